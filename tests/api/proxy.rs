//! A loopback TCP proxy in front of the engine that a test can take down, slow down and bring back.

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward to the engine.
    Pass = 0,
    /// Close every connection at once (the engine is down).
    Down = 1,
    /// Accept and never answer (the engine hangs).
    Hang = 2,
}

/// A running proxy.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    mode: Arc<AtomicU8>,
    changed: watch::Sender<u8>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://host:port`) on the current runtime.
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let (changed, _) = watch::channel(0u8);
        let (accept_mode, accept_changed) = (mode.clone(), changed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut changes = accept_changed.subscribe();
                match accept_mode.load(Ordering::SeqCst) {
                    0 => {
                        let upstream = upstream.clone();
                        tokio::spawn(async move {
                            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                                return;
                            };
                            // A mode change cuts pooled connections too, as an engine restart would.
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = changes.changed() => {}
                            }
                        });
                    }
                    2 => {
                        tokio::spawn(async move {
                            let _held = client;
                            let _ = changes.changed().await;
                        });
                    }
                    _ => drop(client),
                }
            }
        });
        Self {
            endpoint,
            mode,
            changed,
        }
    }

    /// Switches mode, cutting every open connection.
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}
