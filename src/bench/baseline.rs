//! The baseline server: what answering a script costs without decoding. It frames each request
//! and sends the recorded replies that follow it, byte for byte (echoed MIDs and PIDs are the
//! recording's, which is fine for a throughput baseline). It runs as its own process
//! (`honeyfarm bench serve-baseline`) so that its CPU and memory are read like the farm's.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::client::{Plan, Step};
use super::BenchError;

/// Serves `plan` on `listen` until killed; says `listening` on standard output once bound.
pub async fn serve(plan: Plan, listen: SocketAddr) -> Result<(), BenchError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| BenchError::Listen(listen, e))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {listen}");
    let _ = out.flush();
    drop(out);
    let plan = Arc::new(plan);
    loop {
        // Accept errors (a full fd table) are retried: the baseline measures, it is not under
        // attack.
        if let Ok((sock, _)) = listener.accept().await {
            let plan = plan.clone();
            tokio::spawn(async move {
                let _ = answer(&plan, sock).await;
            });
        }
    }
}

/// Plays the server side of one dialog, then waits for the client to close.
async fn answer(plan: &Plan, mut s: TcpStream) -> std::io::Result<()> {
    let mut pending = Vec::new();
    for step in &plan.steps {
        match step {
            Step::Expect(e) => pending.extend_from_slice(&e.bytes),
            Step::Send(request) => {
                if !pending.is_empty() {
                    s.write_all(&pending).await?;
                    pending.clear();
                }
                if plan.read_message(&mut s, request.len()).await?.is_none() {
                    return Ok(());
                }
            }
        }
    }
    if !pending.is_empty() {
        s.write_all(&pending).await?;
    }
    let mut sink = [0u8; 1024];
    while s.read(&mut sink).await? > 0 {}
    Ok(())
}
