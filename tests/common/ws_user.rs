//! A WebSocket test client shared by the test binaries (`#[path]`-included).
#![allow(dead_code)]

use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;

pub struct WsUser {
    pub framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    pub user: String,
}

/// What a WebSocket read produced.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Closed(Option<ws::CloseReason>),
}

impl WsUser {
    /// The next text frame or close (pings are answered, pongs skipped). No frame
    /// within 20 s (pings do not count) fails the test: that is a hang, not a timing
    /// check.
    pub async fn next(&mut self) -> Frame {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let item = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no frame within 20 s", self.user));
            match item {
                None => return Frame::Closed(None),
                Some(Err(e)) => panic!("{}: websocket error {e}", self.user),
                Some(Ok(ws::Frame::Text(t))) => {
                    return Frame::Json(serde_json::from_slice(&t).expect("server frames are JSON"))
                }
                Some(Ok(ws::Frame::Close(r))) => return Frame::Closed(r),
                Some(Ok(ws::Frame::Ping(p))) => {
                    let _ = self.framed.send(ws::Message::Pong(p)).await;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Frame::Json(v) => v,
            Frame::Closed(r) => panic!("{}: closed ({r:?}) while a frame was expected", self.user),
        }
    }

    /// Skips frames until one of type `ty`; returns it.
    pub async fn until(&mut self, ty: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.framed
            .send(ws::Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }
}
