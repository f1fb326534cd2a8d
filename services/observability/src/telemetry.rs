//! Logging and tracing start-up.
//!
//! Logs: one line per event on stdout, plain text for people or JSON for log
//! shippers. The level comes from `RUST_LOG` when it is set (full
//! `EnvFilter` syntax), else from the service's `log.level` setting.
//!
//! Traces: OpenTelemetry over OTLP/HTTP, configured only by the standard
//! environment variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns it on, and
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` or `http/json`),
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG` are honoured. Without an endpoint nothing is
//! set up and no spans are even created, so it costs nothing and says
//! nothing. The log level governs logs only: spans (and the events inside
//! them) are exported at INFO and above whatever `RUST_LOG` or `log.level`
//! say, so quiet logs never turn tracing off. Spans are batched on a
//! background thread: an unreachable collector never slows a request. W3C
//! `traceparent` is the propagation format; [`server_span`] continues an
//! incoming trace and [`inject`] passes it on.
//!
//! Depends on `log_settings`, `log_line`, `log_writer` and the crate
//! root (the TLS provider the exporter needs).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::log_settings::parse_filter;
pub use crate::log_settings::{validate_level, LogFormat, LogSettings};

/// Whether spans are being exported; when not, services skip creating them.
static TRACING: AtomicBool = AtomicBool::new(false);

/// True when an OTLP endpoint was configured at start-up.
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// Keeps the log writer and trace pipeline alive; [`Telemetry::shutdown`]
/// flushes both.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and writes the calling thread's
    /// queued log lines. Call once, after the server stopped.
    pub fn shutdown(self) {
        crate::log_writer::flush_thread();
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "could not flush the last spans");
            }
        }
    }
}

/// Installs logging, and tracing when the environment asks for it. Call
/// once, early in `main`; `service` is the default `service.name`.
pub fn init(settings: &LogSettings, service: &'static str) -> Telemetry {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    // The directives in force: `RUST_LOG` when valid, else `log.level`.
    let directives = env("RUST_LOG")
        .filter(|v| parse_filter(v).is_ok())
        .or_else(|| Some(settings.level.clone()).filter(|l| parse_filter(l).is_ok()))
        .unwrap_or_else(|| "info".to_owned());
    let filter = || parse_filter(&directives).unwrap_or_else(|_| EnvFilter::new("info"));

    let mut warnings = Vec::new();
    let provider = match trace_provider(service, &env) {
        Ok(provider) => provider,
        Err(e) => {
            warnings.push(e);
            None
        }
    };
    // A filter of its own: with the log filter, `warn` would drop every
    // (INFO) span before the exporter saw it.
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });

    // Batched per runtime thread (see `log_writer`); never lossy: under
    // overload a slower log beats a silently incomplete one.
    let writer = crate::log_writer::BatchedStdout;
    let registry = tracing_subscriber::registry().with(otel_layer);
    let ansi = std::io::stdout().is_terminal();
    let result = match settings.format {
        LogFormat::Text => registry
            .with(text_layer(writer, ansi).with_filter(filter()))
            .try_init(),
        LogFormat::Json => registry
            .with(json_layer(writer).with_filter(filter()))
            .try_init(),
    };
    if result.is_err() {
        // Already initialized (tests start several services in one process).
        return Telemetry::default();
    }
    // Hand-formatted lines can match these layers, but not ANSI colours or
    // events inside exported spans.
    let plain = settings.format == LogFormat::Json || !ansi;
    crate::log_line::set_format(
        Some(settings.format).filter(|_| plain && provider.is_none()),
        &directives,
    );
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if provider.is_some() {
        TRACING.store(true, Ordering::Relaxed);
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Telemetry { provider }
}

/// The text log layer: compact lines, no target, ANSI colours on a terminal.
pub(crate) fn text_layer<S, W>(writer: W, ansi: bool) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi)
        .compact()
}

/// The JSON log layer: one flat object per event, no span lists.
pub(crate) fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    fmt::layer()
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
}

/// The tracer provider the environment asks for, if any.
fn trace_provider(
    service: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SdkTracerProvider>, String> {
    if env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return Ok(None);
    }
    // Chosen here rather than left to the exporter: with JSON support
    // compiled in, its default would be JSON, and the spec's is protobuf.
    let protocol = match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .as_deref()
    {
        None | Some("http/protobuf") => opentelemetry_otlp::Protocol::HttpBinary,
        Some("http/json") => opentelemetry_otlp::Protocol::HttpJson,
        Some(other) => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported (use http/protobuf or http/json, usually port 4318); tracing is off"
            ))
        }
    };
    // The exporter's HTTP client needs a TLS provider even for http://.
    crate::install_crypto_provider();
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| format!("OTLP exporter: {e}; tracing is off"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named_by_env = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    if !named_by_env {
        resource = resource.with_service_name(service);
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// A server span for an incoming request, continuing the caller's trace
/// when it sent a `traceparent`. Disabled (free) when tracing is off.
pub fn server_span(
    method: &http::Method,
    route: &str,
    path: &str,
    headers: &http::HeaderMap,
) -> tracing::Span {
    if !tracing_enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "HTTP server",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = route,
        url.path = path,
        http.response.status_code = tracing::field::Empty,
    );
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
    span
}

/// Records the response status on a server or client span.
pub fn record_status(span: &tracing::Span, status: u16) {
    // As i64: the OpenTelemetry layer turns unsigned values into strings.
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// Writes `span`'s context into `headers` as `traceparent`.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if !tracing_enabled() {
        return;
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut HeaderInjector(headers))
    });
}

/// The trace id of `span`, for log lines; `None` when tracing is off.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    if !tracing_enabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_filters_are_refused_without_panicking() {
        for bad in [" é=", "info, é=", "info,[", "\u{0}"] {
            assert!(validate_level(bad).is_err(), "{bad:?}");
        }
        for good in ["info", "warn, gateway=debug", " debug "] {
            assert!(validate_level(good).is_ok(), "{good:?}");
        }
    }
}
