//! Layered configuration loading, shared by both services.
//!
//! Layers, later ones winning: the service's built-in defaults, an optional
//! file (`--config PATH`, YAML or TOML by extension), the `PORT` variable
//! (which many platforms set),
//! then `<PREFIX>__SECTION__KEY` variables. The merged tree is deserialized
//! into the service's typed settings, which reject unknown keys, and then
//! checked by the service's own `validate`. Every failure is one line that
//! names the key.
//!
//! Depends on nothing else in the crate.

use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::{de::DeserializeOwned, Serialize};

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file is missing, unreadable or not valid YAML/TOML.
    #[error("config file {path}: {message}")]
    File {
        /// The path given with `--config`.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A value has the wrong type, or a key is unknown.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value parsed but is out of range or inconsistent.
    #[error("invalid configuration: {key}: {message}")]
    Invalid {
        /// Dotted key, as written in a file (`upstream.connect_timeout`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl SettingsError {
    /// Shorthand for [`SettingsError::Invalid`].
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Serializes a secret as `<redacted>` when set (and `""` when not), so
/// that `--print-config` output can be pasted into a bug report:
/// `#[serde(serialize_with = "launch::settings::redacted")]`.
pub fn redacted<S: serde::Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if value.is_empty() { "" } else { "<redacted>" })
}

/// Where the layers come from. Tests fill this in by hand instead of
/// touching the process environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config PATH`.
    pub file: Option<std::path::PathBuf>,
    /// The environment, as `(name, value)` pairs.
    pub env: Vec<(String, String)>,
}

impl Sources {
    /// Just these environment variables, no file (for tests and tools).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Sources {
            file: None,
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The process environment and an optional file.
    pub fn from_process(file: Option<std::path::PathBuf>) -> Self {
        Sources {
            file,
            env: std::env::vars().collect(),
        }
    }
}

/// Loads settings of type `T` with `T::default()` as the base layer.
///
/// `env_prefix` is `GATEWAY` or `BACKEND`; `port_key` is the dotted key the
/// `PORT` variable sets; `list_keys` are the dotted keys whose environment
/// values are comma-separated lists.
pub fn load<T>(
    sources: &Sources,
    env_prefix: &str,
    port_key: &str,
    list_keys: &[&str],
) -> Result<T, SettingsError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let defaults =
        Config::try_from(&T::default()).map_err(|e| SettingsError::Parse(e.to_string()))?;
    let mut builder = Config::builder().add_source(defaults);

    if let Some(path) = &sources.file {
        builder = builder.add_source(file_source(path)?);
    }

    if let Some((_, port)) = sources.env.iter().find(|(k, _)| k == "PORT") {
        let port: u16 = port.trim().parse().map_err(|_| {
            SettingsError::invalid("PORT", format!("{port:?} is not a port number (1-65535)"))
        })?;
        // A layer of its own (not an override) so that the prefixed
        // variables below still win over it.
        let layer = Config::builder()
            .set_override(port_key, i64::from(port))
            .and_then(|b| b.build())
            .map_err(|e| SettingsError::Parse(e.to_string()))?;
        builder = builder.add_source(layer);
    }

    let prefixed = format!("{env_prefix}__");
    // The config crate would turn GATEWAY____X into a key with empty parts
    // and report it in terms the user never wrote; name the variable instead.
    for (name, _) in sources.env.iter().filter(|(k, _)| k.starts_with(&prefixed)) {
        let rest = &name[prefixed.len()..];
        if rest
            .split("__")
            .any(|part| part.is_empty() || part.starts_with('_') || part.ends_with('_'))
        {
            return Err(SettingsError::invalid(
                name.clone(),
                format!("is not of the form {env_prefix}__SECTION__KEY"),
            ));
        }
    }
    let env: config::Map<String, String> = sources
        .env
        .iter()
        .filter(|(k, _)| k.starts_with(&prefixed))
        .cloned()
        .collect();
    let mut environment = Environment::with_prefix(env_prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(env));
    if !list_keys.is_empty() {
        environment = environment.list_separator(",");
        for key in list_keys {
            environment = environment.with_list_parse_key(key);
        }
    }
    builder = builder.add_source(environment);

    let merged = builder
        .build()
        .map_err(|e| SettingsError::Parse(e.to_string()))?;
    merged.try_deserialize::<T>().map_err(|e| {
        SettingsError::Parse(with_variable_hint(e.to_string(), &prefixed, &sources.env))
    })
}

/// serde names an unknown key by its last part only (`unknown field
/// `prot``); when the key came from the environment, add the variable so
/// the user sees exactly what to fix.
fn with_variable_hint(message: String, prefixed: &str, env: &[(String, String)]) -> String {
    let Some(field) = message
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(field, _)| field.to_ascii_lowercase())
    else {
        return message;
    };
    let variable = env.iter().map(|(k, _)| k).find(|k| {
        k.strip_prefix(prefixed).is_some_and(|rest| {
            rest.to_ascii_lowercase()
                .split("__")
                .any(|part| part == field)
        })
    });
    match variable {
        Some(name) => format!("{message} (set by the environment variable {name})"),
        None => message,
    }
}

fn file_source(path: &Path) -> Result<File<config::FileSourceFile, FileFormat>, SettingsError> {
    let shown = path.display().to_string();
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => FileFormat::Yaml,
        Some("toml") => FileFormat::Toml,
        _ => {
            return Err(SettingsError::File {
                path: shown,
                message: "unsupported extension: use .yaml, .yml or .toml".into(),
            })
        }
    };
    if let Err(e) = std::fs::metadata(path) {
        return Err(SettingsError::File {
            path: shown,
            message: e.to_string(),
        });
    }
    Ok(File::from(path).format(format).required(true))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::io::Write;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Demo {
        listen: Listen,
        name: String,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Listen {
        port: u16,
        drain_timeout_ms: u64,
    }

    impl Default for Demo {
        fn default() -> Self {
            Demo {
                listen: Listen::default(),
                name: "demo".into(),
            }
        }
    }

    impl Default for Listen {
        fn default() -> Self {
            Listen {
                port: 8000,
                drain_timeout_ms: 100,
            }
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(ext: &str, text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_then_file_then_port_then_prefixed_env() {
        let f = file(
            ".yaml",
            "listen:\n  port: 9000\n  drain_timeout_ms: 7\nname: fromfile\n",
        );
        let mut sources = Sources {
            file: Some(f.path().into()),
            env: vec![],
        };
        let d: Demo = load(&sources, "DEMO", "listen.port", &[]).unwrap();
        assert_eq!(d.listen.port, 9000);
        assert_eq!(d.name, "fromfile");

        sources.env = env(&[("PORT", "9100")]);
        let d: Demo = load(&sources, "DEMO", "listen.port", &[]).unwrap();
        assert_eq!(d.listen.port, 9100);
        assert_eq!(d.listen.drain_timeout_ms, 7);

        sources.env = env(&[
            ("PORT", "9100"),
            ("DEMO__LISTEN__PORT", "9200"),
            ("DEMO__NAME", "env"),
        ]);
        let d: Demo = load(&sources, "DEMO", "listen.port", &[]).unwrap();
        assert_eq!(d.listen.port, 9200);
        assert_eq!(d.name, "env");
    }

    #[test]
    fn toml_files_work_and_defaults_fill_gaps() {
        let f = file(".toml", "[listen]\nport = 1234\n");
        let sources = Sources {
            file: Some(f.path().into()),
            env: vec![],
        };
        let d: Demo = load(&sources, "DEMO", "listen.port", &[]).unwrap();
        assert_eq!(d.listen.port, 1234);
        assert_eq!(d.listen.drain_timeout_ms, 100);
        assert_eq!(d.name, "demo");
    }

    #[test]
    fn errors_name_the_key() {
        let bad = |pairs: &[(&str, &str)]| {
            load::<Demo>(
                &Sources {
                    file: None,
                    env: env(pairs),
                },
                "DEMO",
                "listen.port",
                &[],
            )
            .unwrap_err()
            .to_string()
        };
        let e = bad(&[("DEMO__LISTEN__PORT", "abc")]);
        assert!(e.contains("listen.port"), "{e}");
        let e = bad(&[("DEMO__LISTEN__PORT", "70000")]);
        assert!(e.contains("listen.port"), "{e}");
        let e = bad(&[("PORT", "http")]);
        assert!(e.contains("PORT"), "{e}");
        let e = bad(&[("DEMO__LISTEN__PROT", "1")]);
        assert!(e.contains("prot"), "{e}");
    }

    #[test]
    fn file_problems_are_reported_with_the_path() {
        let missing = Sources {
            file: Some("/nonexistent/gateway.yaml".into()),
            env: vec![],
        };
        let e = load::<Demo>(&missing, "DEMO", "listen.port", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/gateway.yaml"), "{e}");

        let f = file(".ini", "x");
        let e = load::<Demo>(
            &Sources {
                file: Some(f.path().into()),
                env: vec![],
            },
            "DEMO",
            "listen.port",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unsupported extension"), "{e}");

        let f = file(".yaml", "listen: [1, 2\n");
        let e = load::<Demo>(
            &Sources {
                file: Some(f.path().into()),
                env: vec![],
            },
            "DEMO",
            "listen.port",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(!e.is_empty());
    }
}
