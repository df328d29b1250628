//! A TCP proxy for fault tests: put it between an adapter and a real server (Redis,
//! PostgreSQL), then `stop` it to simulate the server going away (listener closed, every open
//! connection cut) and `resume` it on the same port to bring the server back — without
//! touching the shared server other tests use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy.
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    running: Mutex<Option<Running>>,
}

struct Running {
    accept: JoinHandle<()>,
    cut: watch::Sender<bool>,
}

impl TcpProxy {
    /// Starts forwarding a free local port to `target`.
    pub async fn start(target: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = Arc::new(Self {
            addr,
            target,
            running: Mutex::new(None),
        });
        proxy.serve(listener);
        proxy
    }

    /// `127.0.0.1:PORT` to point the adapter at.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server goes away: new connections are refused, open ones are cut.
    pub fn stop(&self) {
        if let Some(r) = self.running.lock().expect("proxy lock").take() {
            r.accept.abort();
            let _ = r.cut.send(true);
        }
    }

    /// The server comes back on the same port.
    pub async fn resume(self: &Arc<Self>) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                // The aborted accept loop may not have released the port yet.
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("re-bind proxy port {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let (cut, cut_rx) = watch::channel(false);
        let target = self.target;
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        *self.running.lock().expect("proxy lock") = Some(Running { accept, cut });
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Ok(mut r) = self.running.lock()
            && let Some(r) = r.take()
        {
            r.accept.abort();
            let _ = r.cut.send(true);
        }
    }
}
