//! One listening socket per serving thread, all on the same address
//! (`SO_REUSEPORT`), so that the kernel spreads connections over the
//! threads by the hash of their addresses instead of whichever thread wins
//! the race to `accept`.
//!
//! With one shared listener, the thread that wakes first takes a whole
//! burst of connections (wrk opens all of its at once), and every
//! request on those connections stays on that thread: one core works while
//! the other idles, for as long as the connections live. A listener per
//! thread has no race to win. A hash still deals unevenly now and then (22
//! of 32 connections to one thread). Evening that out by handing
//! connections between threads was tried and left out: instances belong to
//! a thread, so with a small `--max-instances` it kept every new connection
//! away from the thread that had the instance.
//!
//! The price of a listener per thread is that connections the kernel queued
//! for a thread wait for that thread. A thread stuck in guest code that
//! never yields (a busy loop with no `--request-timeout`) would leave them
//! waiting forever, so each thread beats a heartbeat, and the others take
//! over the kernel's queue of a thread whose heartbeat stopped
//! ([`STALL_CHECK`]).
//!
//! On systems without `SO_REUSEPORT` (Windows) the threads share one
//! listener, as before. This module does not serve connections or count
//! them (the server and the thread gauges in `thread_metrics` do).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{Interval, MissedTickBehavior};

/// Pending connections the kernel may queue for each thread while it is
/// busy.
const LISTEN_BACKLOG: u32 = 1024;

/// How often a thread beats its heartbeat and looks at the others'. A thread
/// whose heartbeat did not move for two checks in a row (20–40 ms) is stuck,
/// and the others accept its queued connections. Short enough that a client
/// hardly notices, long enough that a thread merely busy with requests
/// (whose timers still run between them) is left alone, and costing an idle
/// server 50 wake-ups a second per thread.
const STALL_CHECK: Duration = Duration::from_millis(20);

/// At most this many connections are taken over from a stuck thread per
/// check, so the taker keeps serving its own.
const MAX_TAKEN_PER_CHECK: usize = 64;

/// The listening sockets of a server, bound but not yet serving.
pub(crate) struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
}

impl Listeners {
    /// Binds `threads` listeners on `addr` (one shared listener where
    /// `SO_REUSEPORT` does not exist). With port 0, the first socket picks
    /// the port and the others join it.
    ///
    /// Fails with `AddrInUse` when anything else listens on `addr`, another
    /// host-runner included: sharing the port with it (which `SO_REUSEPORT`
    /// would allow) would split the traffic between two servers silently.
    pub(crate) fn bind(addr: SocketAddr, threads: usize) -> io::Result<Self> {
        let per_thread = cfg!(unix) && threads > 1;
        if per_thread && addr.port() != 0 {
            // A socket without SO_REUSEPORT cannot join a group, so this
            // bind fails if any listener, of any program, holds the address.
            drop(socket(addr, false)?);
        }
        let first = socket(addr, per_thread)?.listen(LISTEN_BACKLOG)?;
        let local_addr = first.local_addr()?;
        let mut sockets = vec![first.into_std()?];
        if per_thread {
            for _ in 1..threads {
                let joined = socket(local_addr, true)?.listen(LISTEN_BACKLOG)?;
                sockets.push(joined.into_std()?);
            }
        }
        Ok(Self {
            sockets,
            local_addr,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// One [`ThreadListener`] for each of `threads` serving threads.
    pub(crate) fn split(self, threads: usize) -> io::Result<Vec<ThreadListener>> {
        if self.sockets.len() < threads {
            // One listener shared by every thread: the kernel's accept race
            // decides, and there is nobody's queue to take over.
            let shared = &self.sockets[0];
            return (0..threads)
                .map(|index| {
                    Ok(ThreadListener {
                        own: shared.try_clone()?,
                        index,
                        siblings: Arc::from(Vec::new()),
                    })
                })
                .collect();
        }
        let siblings: Arc<[Sibling]> = self
            .sockets
            .iter()
            .map(|socket| {
                Ok(Sibling {
                    listener: Mutex::new(Some(socket.try_clone()?)),
                    heartbeat: AtomicU64::new(0),
                })
            })
            .collect::<io::Result<Vec<_>>>()?
            .into();
        Ok(self
            .sockets
            .into_iter()
            .enumerate()
            .map(|(index, own)| ThreadListener {
                own,
                index,
                siblings: siblings.clone(),
            })
            .collect())
    }
}

/// One listener on `addr`, for a single accepting task (`/metrics`).
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    socket(addr, false)?.listen(LISTEN_BACKLOG)
}

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Lets a restarted server rebind while old connections sit in
    // TIME_WAIT. (On Windows the same flag would let two servers share the
    // port, so it stays off there.)
    socket.set_reuseaddr(!cfg!(windows))?;
    #[cfg(unix)]
    socket.set_reuseport(reuse_port)?;
    #[cfg(not(unix))]
    let _ = reuse_port;
    socket.bind(addr)?;
    Ok(socket)
}

/// A thread's listener and a view of the others', movable to the thread
/// that will serve it.
pub(crate) struct ThreadListener {
    own: std::net::TcpListener,
    index: usize,
    /// Every thread's listener and heartbeat, this one's included; empty
    /// when the threads share one listener.
    siblings: Arc<[Sibling]>,
}

struct Sibling {
    /// A second handle on that thread's socket, to accept from when it is
    /// stuck; closed (taken) when that thread stops accepting, so that a
    /// stopping server refuses new connections while its last requests
    /// finish.
    listener: Mutex<Option<std::net::TcpListener>>,
    /// Beaten by that thread every [`STALL_CHECK`] while its runtime runs.
    heartbeat: AtomicU64,
}

impl ThreadListener {
    /// Starts accepting on the current thread's runtime.
    pub(crate) fn start(self) -> io::Result<Acceptor> {
        let check = (self.siblings.len() > 1).then(|| {
            let first = tokio::time::Instant::now() + STALL_CHECK;
            let mut check = tokio::time::interval_at(first, STALL_CHECK);
            check.set_missed_tick_behavior(MissedTickBehavior::Delay);
            check
        });
        Ok(Acceptor {
            own: TcpListener::from_std(self.own)?,
            index: self.index,
            seen: vec![(0, 0); self.siblings.len()],
            siblings: self.siblings,
            check,
            taken: VecDeque::new(),
        })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        if let Some(this) = self.siblings.get(self.index) {
            let listener = this
                .listener
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            drop(listener);
        }
    }
}

/// Accepts a thread's connections: its own, and those of a stuck sibling.
pub(crate) struct Acceptor {
    own: TcpListener,
    index: usize,
    siblings: Arc<[Sibling]>,
    /// For each sibling: its heartbeat at the last check, and for how many
    /// checks in a row it had not moved.
    seen: Vec<(u64, u32)>,
    check: Option<Interval>,
    /// Connections taken from a stuck sibling, not yet served.
    taken: VecDeque<TcpStream>,
}

impl Acceptor {
    /// The next connection for this thread.
    pub(crate) async fn accept(&mut self) -> io::Result<TcpStream> {
        loop {
            if let Some(stream) = self.taken.pop_front() {
                return Ok(stream);
            }
            let Some(check) = &mut self.check else {
                let (stream, _peer) = self.own.accept().await?;
                return Ok(stream);
            };
            tokio::select! {
                biased;
                // Before accepting, so a flood of connections cannot starve
                // the heartbeat.
                _ = check.tick() => self.check_siblings(),
                accepted = self.own.accept() => return Ok(accepted?.0),
            }
        }
    }

    /// Whether sibling `index`'s heartbeat stood still for two checks in a
    /// row.
    fn stuck(&self, index: usize) -> bool {
        self.seen[index].1 >= 2
    }

    /// Beats this thread's heartbeat and takes over the queues of every
    /// sibling whose heartbeat stopped.
    fn check_siblings(&mut self) {
        self.siblings[self.index]
            .heartbeat
            .fetch_add(1, Ordering::Relaxed);
        for (index, sibling) in self.siblings.iter().enumerate() {
            if index == self.index {
                continue;
            }
            let beat = sibling.heartbeat.load(Ordering::Relaxed);
            let (seen, still) = &mut self.seen[index];
            *still = if beat == *seen {
                still.saturating_add(1)
            } else {
                0
            };
            *seen = beat;
            if !self.stuck(index) {
                continue;
            }
            let listener = sibling.listener.lock().unwrap_or_else(|e| e.into_inner());
            let Some(listener) = listener.as_ref() else {
                continue;
            };
            while self.taken.len() < MAX_TAKEN_PER_CHECK {
                match listener.accept() {
                    Ok((stream, _peer)) => {
                        if let Ok(stream) = stream
                            .set_nonblocking(true)
                            .and_then(|()| TcpStream::from_std(stream))
                        {
                            self.taken.push_back(stream);
                        }
                    }
                    // Empty (WouldBlock), or failing for a reason its owner
                    // will log once it runs again.
                    Err(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_thread_gets_a_listener_on_the_port_the_first_one_picked() {
        let listeners = Listeners::bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let addr = listeners.local_addr();
        assert_ne!(addr.port(), 0);
        let threads = listeners.split(3).unwrap();
        assert_eq!(threads.len(), 3);
        for thread in &threads {
            assert_eq!(thread.own.local_addr().unwrap(), addr);
        }
    }

    #[tokio::test]
    async fn an_address_another_server_listens_on_is_refused() {
        let first = Listeners::bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let second = Listeners::bind(first.local_addr(), 2);
        assert_eq!(
            second.err().map(|error| error.kind()),
            Some(io::ErrorKind::AddrInUse)
        );
    }

    #[tokio::test]
    async fn a_stuck_threads_queued_connections_are_taken_over() {
        let listeners = Listeners::bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = listeners.local_addr();
        let mut threads = listeners.split(2).unwrap().into_iter();
        let (first, second) = (threads.next().unwrap(), threads.next().unwrap());
        // The second thread never starts: its heartbeat never moves. The
        // first must end up with every connection, whichever queue the
        // kernel put it in.
        let mut acceptor = first.start().unwrap();
        let clients: Vec<_> = (0..16)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut accepted = Vec::new();
        for _ in &clients {
            let connection = tokio::time::timeout(Duration::from_secs(5), acceptor.accept())
                .await
                .expect("a connection queued for the stuck thread waited")
                .unwrap();
            accepted.push(connection);
        }
        drop(second);
    }
}
