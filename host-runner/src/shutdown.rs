//! When to stop: Ctrl-C, SIGTERM, a connection to the shutdown address, or a
//! call to [`Shutdown::trigger`] (tests, benches, embedders).
//!
//! The first request starts a graceful shutdown; a second one asks to stop
//! without waiting for in-flight requests. This module only signals; the
//! server module decides what "graceful" means (stop accepting, let
//! in-flight requests finish).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;

/// A shutdown signal that can be triggered from several sources and waited
/// on by several tasks. Clones share the same signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// How many times shutdown was requested (0, 1, 2+).
    requests: watch::Sender<u32>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that only [`Shutdown::trigger`] sets off.
    pub fn new() -> Self {
        Self {
            requests: watch::Sender::new(0),
        }
    }

    /// Also sets off on Ctrl-C and, on Unix, SIGTERM.
    ///
    /// Must be called inside a tokio runtime. Installing the handlers
    /// replaces the default "terminate at once" behaviour, which is why it is
    /// done before the server reports that it is listening.
    pub fn on_signals(&self) -> std::io::Result<()> {
        #[cfg(unix)]
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                #[cfg(unix)]
                let received = tokio::select! {
                    r = tokio::signal::ctrl_c() => r.is_ok(),
                    r = terminate.recv() => r.is_some(),
                };
                #[cfg(not(unix))]
                let received = tokio::signal::ctrl_c().await.is_ok();
                if !received {
                    // The signal driver is gone; nothing more will arrive.
                    return;
                }
                this.trigger();
            }
        });
        Ok(())
    }

    /// Also sets off when anything connects to `addr`. Returns the address
    /// actually bound (port 0 picks a free one).
    pub async fn listen_on(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let this = self.clone();
        tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                this.trigger();
            }
        });
        Ok(bound)
    }

    /// Requests shutdown: the first call is graceful, the second forces it.
    pub fn trigger(&self) {
        self.requests.send_modify(|n| *n = n.saturating_add(1));
    }

    /// Resolves once shutdown was requested at least once.
    pub async fn requested(&self) {
        self.at_least(1).await;
    }

    /// Resolves once shutdown was requested a second time.
    pub async fn forced(&self) {
        self.at_least(2).await;
    }

    async fn at_least(&self, count: u32) {
        let mut requests = self.requests.subscribe();
        // `wait_for` only fails once every sender is gone, and `self` is one.
        let _ = requests.wait_for(|&n| n >= count).await;
    }
}
