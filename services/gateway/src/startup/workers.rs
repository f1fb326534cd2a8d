//! The per-CPU workers: one single-threaded runtime each, with its own
//! `SO_REUSEPORT` listener and upstream pool, and the serving of one
//! worker's listeners until shutdown. Depends on the gateway assembled in
//! [`super`], `admin` (which listener may change the registry) and
//! `config`.

use std::future::Future;
use std::sync::Arc;

use serving::server::Drain;
use tokio::net::TcpListener;

use super::{Gateway, StartupError, Stopped};
use crate::admin::Changes;
use crate::config::Settings;

/// How the binary serves: `workers` threads, each with its own
/// single-threaded runtime, its own `SO_REUSEPORT` listener on the public
/// address and its own upstream connection pool. The kernel spreads
/// connections over the listeners, and a request never changes thread, which
/// saves the cross-thread wake-ups a work-stealing runtime pays on every
/// proxied request. Shared state (registry, stats, metrics) is lock-free or
/// sharded. Blocks until shutdown completes.
pub fn run_workers(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Drain, StartupError> {
    let workers = settings.effective_workers();
    let address = format!("{}:{}", settings.listen.host, settings.listen.port);
    let listeners = (0..workers)
        .map(|_| serving::server::bind_reuseport(&address))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
    let admin = if settings.admin.listen.is_empty() {
        None
    } else {
        let admin_address = settings.admin.listen.clone();
        Some(
            std::net::TcpListener::bind(&admin_address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| StartupError::AdminListener {
                    address: admin_address,
                    source,
                })?,
        )
    };
    let changes = if admin.is_some() {
        Changes::Refused
    } else {
        Changes::Allowed
    };
    let gateway = Arc::new(Gateway::new(settings)?);
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // Log lines queued during this turn of the event loop go out in
            // one write (observability::log_writer).
            .on_thread_park(observability::log_writer::flush_thread)
            .build()
            .map_err(StartupError::Listener)
    };

    let main_runtime = runtime()?;
    let mut listeners = listeners.into_iter();
    let first = listeners.next();
    let (stopped, mut handles) = main_runtime.block_on(async {
        let stopped = gateway.stop_on(shutdown);
        gateway.spawn_background(&stopped)?;
        let mut handles = Vec::new();
        for (i, listener) in listeners.enumerate() {
            let gateway = gateway.clone();
            let stopped = stopped.clone();
            let rt = runtime()?;
            let handle = std::thread::Builder::new()
                .name(format!("gateway-worker-{}", i + 1))
                .spawn(move || {
                    rt.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        gateway.serve_public(listener, changes, stopped).await
                    })
                })
                .map_err(StartupError::Listener)?;
            handles.push(handle);
        }
        Ok::<_, StartupError>((stopped, handles))
    })?;
    gateway.log_start(
        &address,
        admin.as_ref().and_then(|l| l.local_addr().ok()),
        workers,
    );

    let mut drain = main_runtime.block_on(async {
        let admin = admin.map(TcpListener::from_std).transpose()?;
        match first {
            Some(listener) => {
                serve_main(&gateway, TcpListener::from_std(listener)?, admin, stopped).await
            }
            None => Ok(Drain::Complete),
        }
    })?;
    for handle in handles.drain(..) {
        match handle.join() {
            Ok(Ok(Drain::TimedOut)) => drain = Drain::TimedOut,
            Ok(Ok(Drain::Complete)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => tracing::error!("a worker thread panicked"),
        }
    }
    tracing::info!(?drain, "gateway stopped");
    Ok(drain)
}

/// Serves the public listener on the current runtime, and the admin
/// listener beside it when there is one (the public port then refuses
/// registry changes). The drain timed out if either one's did.
pub(super) async fn serve_main(
    gateway: &Arc<Gateway>,
    public: TcpListener,
    admin: Option<TcpListener>,
    stopped: Stopped,
) -> Result<Drain, StartupError> {
    let changes = if admin.is_some() {
        Changes::Refused
    } else {
        Changes::Allowed
    };
    let admin_server = admin.map(|listener| {
        let gateway = gateway.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move { gateway.serve_admin(listener, stopped).await })
    });
    let mut drain = gateway.serve_public(public, changes, stopped).await?;
    if let Some(admin) = admin_server {
        if let Ok(Drain::TimedOut) = admin.await {
            drain = Drain::TimedOut;
        }
    }
    Ok(drain)
}
