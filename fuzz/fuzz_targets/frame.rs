//! Fuzzes the transport's frame decoder with arbitrary bytes:
//! `cargo fuzz run frame` (from the workspace root; see fuzz/README.md).
//!
//! The decoder module is compiled in as is, so the target builds in seconds
//! instead of building the whole host. The message type has the shapes the
//! real protocols use: nested enums, strings, lists, options, integers.

#![no_main]

#[path = "../../host/src/transport/frame.rs"]
#[allow(dead_code)]
mod frame;

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum Message {
    Call { id: u64, request: Request },
    Reply { id: u64, result: Result<Vec<(u64, Vec<Mutation>)>, String> },
    Hello { magic: [u8; 4], version: u32, service: String },
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Lock { id: String, epoch: u64 },
    Push { id: String, epoch: u64, prev: u64, version: u64, mutations: Vec<Mutation> },
    Read { id: String, key: String },
    Info,
}

#[derive(Debug, Serialize, Deserialize)]
struct Mutation {
    tag: u32,
    key: String,
    value: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Every frame in the input decodes to a message or an error; none panics
    // or allocates past the maximum.
    while let Ok(Some((_message, used))) = frame::decode::<Message>(rest, 1 << 16) {
        rest = &rest[used..];
    }
});
