//! A TCP relay in front of a server, which a test can make hang: from
//! [`Relay::hang`] on it still accepts connections and reads what clients
//! send, but forwards nothing either way and closes nothing. What a client
//! sees of an API server behind a broken network path or a stuck proxy:
//! requests that neither answer nor fail.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Relay {
    addr: SocketAddr,
    hung: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Relay {
    /// Relays loopback connections to `target` until dropped.
    pub async fn start(target: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let hung = Arc::new(AtomicBool::new(false));
        let accept = tokio::spawn({
            let hung = hung.clone();
            async move {
                // Connections live as long as the accept loop: their tasks
                // are aborted with it.
                let mut conns = tokio::task::JoinSet::new();
                while let Ok((client, _)) = listener.accept().await {
                    let hung = hung.clone();
                    conns.spawn(async move {
                        let Ok(server) = TcpStream::connect(target).await else {
                            return;
                        };
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        let _ = tokio::join!(pipe(cr, sw, hung.clone()), pipe(sr, cw, hung));
                    });
                }
            }
        });
        Ok(Relay { addr, hung, accept })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on nothing is forwarded, on new and open connections alike.
    pub fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    hung: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                if hung.load(Ordering::SeqCst) {
                    // A hung path does not tell the other side either.
                    std::future::pending::<()>().await;
                }
                return;
            }
            Ok(n) => n,
        };
        if hung.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
