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
//! of 32 connections to one thread), so a thread that holds two more
//! connections than another hands a new one over to it, before serving a
//! byte of it: the counts stay within two of each other, and the only
//! wake-up across threads is that hand-over, once per handed connection.
//!
//! The price of a listener per thread is that connections the kernel queued
//! for a thread wait for that thread. A thread stuck in guest code that
//! never yields (a busy loop with no `--request-timeout`) would leave them
//! waiting forever, so each thread beats a heartbeat, and the others take
//! over the queues (the kernel's and the hand-overs') of a thread whose
//! heartbeat stopped ([`STALL_CHECK`]); nobody hands connections to it.
//!
//! On systems without `SO_REUSEPORT` (Windows) the threads share one
//! listener, as before. This module does not serve connections or count
//! them (the server and the thread gauges in `thread_metrics` do).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
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
                    open: AtomicUsize::new(0),
                    handed: Mutex::new(VecDeque::new()),
                    wake: Notify::new(),
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
    /// stopping server refuses new connections even while seats, which
    /// hold this array, are still open.
    listener: Mutex<Option<std::net::TcpListener>>,
    /// Beaten by that thread every [`STALL_CHECK`] while its runtime runs.
    heartbeat: AtomicU64,
    /// Connections that thread holds (its [`Seat`]s), handed ones included.
    open: AtomicUsize,
    /// Connections other threads handed to it, not yet picked up. A queue
    /// anyone can drain, so a thread that gets stuck with some in it does
    /// not strand them.
    handed: Mutex<VecDeque<(std::net::TcpStream, Seat)>>,
    /// Wakes it when a connection is handed to it.
    wake: Notify,
}

impl Sibling {
    fn pop_handed(&self) -> Option<(std::net::TcpStream, Seat)> {
        self.handed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

/// A connection counted as held by its thread until this is dropped (with
/// the connection).
pub(crate) struct Seat {
    siblings: Arc<[Sibling]>,
    index: usize,
}

impl Seat {
    fn take(siblings: &Arc<[Sibling]>, index: usize) -> Self {
        if let Some(sibling) = siblings.get(index) {
            sibling.open.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            siblings: siblings.clone(),
            index,
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(sibling) = self.siblings.get(self.index) {
            sibling.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
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
        // A connection handed over but never picked up holds a seat, and
        // so the siblings: dropping it here breaks that cycle, so the
        // sockets close when the server stops.
        if let Some(this) = self.siblings.get(self.index) {
            this.handed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
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
    /// Connections taken from a stuck sibling, not yet handed out.
    taken: VecDeque<TcpStream>,
}

impl Acceptor {
    /// The next connection for this thread, and its seat: the connection
    /// counts as this thread's until the seat is dropped.
    pub(crate) async fn accept(&mut self) -> io::Result<(TcpStream, Seat)> {
        loop {
            if let Some(stream) = self.taken.pop_front() {
                return Ok((stream, Seat::take(&self.siblings, self.index)));
            }
            let Some(check) = &mut self.check else {
                let (stream, _peer) = self.own.accept().await?;
                return Ok((stream, Seat::take(&self.siblings, self.index)));
            };
            let this = &self.siblings[self.index];
            if let Some((stream, seat)) = this.pop_handed() {
                return Ok((TcpStream::from_std(stream)?, seat));
            }
            tokio::select! {
                biased;
                // A hand-over's wake-up may come while this future is not
                // waiting; the check below picks it up then.
                () = this.wake.notified() => continue,
                // Before accepting, so a flood of connections cannot starve
                // the heartbeat.
                _ = check.tick() => self.check_siblings(),
                accepted = self.own.accept() => {
                    let (stream, _peer) = accepted?;
                    match self.hand_over(stream)? {
                        Some(stream) => {
                            return Ok((stream, Seat::take(&self.siblings, self.index)));
                        }
                        None => continue,
                    }
                }
            }
        }
    }

    /// Hands `stream` to the thread holding the fewest connections if this
    /// one holds at least two more, and that thread is not stuck; gives it
    /// back otherwise.
    fn hand_over(&self, stream: TcpStream) -> io::Result<Option<TcpStream>> {
        let open = |index: usize| self.siblings[index].open.load(Ordering::Relaxed);
        let mine = open(self.index);
        let least = (0..self.siblings.len())
            .filter(|&index| index != self.index && !self.stuck(index))
            .min_by_key(|&index| open(index));
        let Some(least) = least.filter(|&least| open(least) + 2 <= mine) else {
            return Ok(Some(stream));
        };
        let seat = Seat::take(&self.siblings, least);
        let sibling = &self.siblings[least];
        sibling
            .handed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((stream.into_std()?, seat));
        sibling.wake.notify_one();
        Ok(None)
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
            while self.taken.len() < MAX_TAKEN_PER_CHECK {
                // Its seat there is dropped; it takes one here when handed
                // out.
                let Some((stream, _seat)) = sibling.pop_handed() else {
                    break;
                };
                if let Ok(stream) = TcpStream::from_std(stream) {
                    self.taken.push_back(stream);
                }
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

    #[tokio::test]
    async fn a_thread_two_connections_ahead_hands_the_next_one_over() {
        let listeners = Listeners::bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = listeners.local_addr();
        let mut threads = listeners.split(2).unwrap().into_iter();
        let mut first = threads.next().unwrap().start().unwrap();
        let mut second = threads.next().unwrap().start().unwrap();
        // Both threads run on this test's one runtime, so a connection
        // either accepts is "served"; the seats count who holds which.
        let mut held = Vec::new();
        let _clients: Vec<_> = (0..8)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        for _ in 0..8 {
            let connection = tokio::select! {
                accepted = first.accept() => accepted.unwrap(),
                accepted = second.accept() => accepted.unwrap(),
            };
            held.push(connection);
        }
        let first_holds = held.iter().filter(|(_, seat)| seat.index == 0).count();
        assert!(
            (3..=5).contains(&first_holds),
            "the first thread holds {first_holds} of 8 connections"
        );
    }
}
