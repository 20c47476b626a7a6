//! A scripted fake of the Anthropic Messages API for end-to-end tests.
//!
//! The real Claude Code CLI is pointed at [`FakeApi::base_url`]; every
//! `POST /v1/messages` it makes is recorded and answered by a test-supplied
//! script. Only std and `serde_json` are used, and the server only ever binds
//! and connects to 127.0.0.1.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{json, Value};

/// Marker Claude Code puts in the system prompt of subagent requests.
const SUBAGENT_MARKER: &str = "cc_is_subagent=true";
/// Idle connections are dropped after this, so no thread can hang forever.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Guards against garbage lengths; real request bodies are a few hundred KB.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const MAX_LINE_BYTES: u64 = 64 * 1024;
const MAX_HEADERS: usize = 200;

type Script = dyn Fn(&ApiRequest) -> Reply + Send + Sync;

/// A fake Messages API server on 127.0.0.1 that answers with a script.
///
/// Serves on background threads (one per connection) until dropped.
pub struct FakeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Binds 127.0.0.1:0 and serves on background threads until dropped.
    ///
    /// `script` is called once per `POST /v1/messages`, after the request
    /// has been recorded, and decides what the "model" answers.
    ///
    /// # Panics
    /// Panics if the loopback listener cannot be created (test setup error).
    pub fn start<F>(script: F) -> FakeApi
    where
        F: Fn(&ApiRequest) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind fake API on 127.0.0.1");
        let addr = listener.local_addr().expect("fake API local address");
        let shared = Arc::new(Shared::new(Box::new(script)));
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name("fake-api-accept".into())
            .spawn(move || accept_loop(&listener, &accept_shared))
            .expect("spawn fake API accept thread");
        FakeApi { addr, shared, accept_thread: Some(accept_thread) }
    }

    /// The URL to put in `ANTHROPIC_BASE_URL`, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `POST /v1/messages` received (not `count_tokens`), in arrival order.
    /// The model of every subagent request received, in order.
    pub fn subagent_models(&self) -> Vec<String> {
        self.requests().iter().filter(|r| r.is_subagent()).map(|r| r.model().to_string()).collect()
    }

    pub fn requests(&self) -> Vec<ApiRequest> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // accept() only notices the flag when it returns, so poke it once.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        // Idle keep-alive connections would otherwise linger until READ_TIMEOUT.
        for stream in lock(&self.shared.open_connections).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Joining is only safe when the wake-up connection got through;
        // otherwise the thread is left detached rather than waited on forever.
        if let Some(handle) = self.accept_thread.take() {
            if woke {
                let _ = handle.join();
            }
        }
    }
}

/// One recorded `POST /v1/messages` request.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    /// The request target as sent, including any query (`/v1/messages?beta=true`).
    pub path: String,
    /// The parsed JSON body.
    pub body: Value,
}

impl ApiRequest {
    /// The requested model, or `""` when absent.
    pub fn model(&self) -> &str {
        self.body.get("model").and_then(Value::as_str).unwrap_or("")
    }

    /// True when the system prompt carries Claude Code's subagent marker.
    pub fn is_subagent(&self) -> bool {
        self.body
            .get("system")
            .map(text_blocks)
            .unwrap_or_default()
            .iter()
            .any(|text| text.contains(SUBAGENT_MARKER))
    }

    /// True when the last message contains a `tool_result` block, i.e. the
    /// client is reporting back the outcome of a tool call.
    pub fn ends_with_tool_result(&self) -> bool {
        self.last_message().is_some_and(|message| tool_result_blocks(message).next().is_some())
    }

    /// All text of every message (any role): string contents, text blocks,
    /// and the text inside `tool_result` blocks, joined with `"\n"`.
    /// The top-level `system` field is not included.
    pub fn message_text(&self) -> String {
        let mut texts = Vec::new();
        for message in self.messages() {
            texts.extend(message_texts(message));
        }
        texts.join("\n")
    }

    /// The text of each `tool_result` block in the last message, one entry per block.
    pub fn tool_result_texts(&self) -> Vec<String> {
        self.last_message()
            .map(|message| tool_result_blocks(message).map(tool_result_text).collect())
            .unwrap_or_default()
    }

    /// The text blocks (or string content) of the last `user` message, joined with `"\n"`.
    pub fn last_user_text(&self) -> String {
        self.messages()
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|message| message.get("content"))
            .map(|content| text_blocks(content).join("\n"))
            .unwrap_or_default()
    }

    fn messages(&self) -> &[Value] {
        self.body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    }

    fn last_message(&self) -> Option<&Value> {
        self.messages().last()
    }

    fn wants_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool).unwrap_or(false)
    }
}

/// What the fake model answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A plain assistant text turn (`stop_reason: end_turn`).
    Text(String),
    /// A tool call; the server streams `input` as one input_json_delta.
    ToolUse { name: String, input: Value },
    /// Answer with this HTTP status and an Anthropic-style error JSON body
    /// `{"type":"error","error":{"type":"api_error","message":...}}`.
    Error { status: u16, message: String },
    /// A subscription's exhausted 5-hour window: 429 with the `anthropic-ratelimit-unified-*`
    /// headers saying it resets at `resets_at` (epoch seconds). A client logged in with a
    /// subscription (`CLAUDE_CODE_OAUTH_TOKEN`) says "resets 7pm"; one with an API key does not.
    QuotaExhausted { resets_at: i64 },
}

impl Reply {
    /// Shorthand for [`Reply::Text`].
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Text(s.into())
    }

    /// A call of Claude Code's `Agent` tool that launches `subagent_type`
    /// with `prompt`; the description is the prompt's first five words.
    pub fn agent(subagent_type: &str, prompt: &str) -> Reply {
        let description = prompt.split_whitespace().take(5).collect::<Vec<_>>().join(" ");
        Reply::ToolUse {
            name: "Agent".to_string(),
            input: json!({
                "description": description,
                "prompt": prompt,
                "subagent_type": subagent_type,
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Message-body helpers

/// Texts of a `content`/`system` value: a bare string, or its `text` blocks.
fn text_blocks(content: &Value) -> Vec<String> {
    match content {
        Value::String(text) => vec![text.clone()],
        Value::Array(blocks) => blocks
            .iter()
            .filter(|block| block_type(block) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Texts of one message, including those nested in its tool results.
fn message_texts(message: &Value) -> Vec<String> {
    match message.get("content") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(blocks)) => blocks.iter().filter_map(block_text).collect(),
        _ => Vec::new(),
    }
}

fn block_text(block: &Value) -> Option<String> {
    match block_type(block)? {
        "text" => block.get("text").and_then(Value::as_str).map(str::to_string),
        "tool_result" => Some(tool_result_text(block)),
        _ => None,
    }
}

fn tool_result_blocks(message: &Value) -> impl Iterator<Item = &Value> {
    message
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|block| block_type(block) == Some("tool_result"))
}

/// A tool result's content may be a string or an array of text blocks.
fn tool_result_text(block: &Value) -> String {
    block.get("content").map(text_blocks).unwrap_or_default().join("\n")
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

// ---------------------------------------------------------------------------
// Server state and connection handling

struct Shared {
    script: Box<Script>,
    requests: Mutex<Vec<ApiRequest>>,
    /// Source of `msg_N` / `toolu_fake_N` ids, unique for the server's lifetime.
    next_id: AtomicU64,
    next_connection: AtomicU64,
    stopping: AtomicBool,
    /// Clones of live sockets so Drop can shut them down.
    open_connections: Mutex<HashMap<u64, TcpStream>>,
}

impl Shared {
    fn new(script: Box<Script>) -> Shared {
        Shared {
            script,
            requests: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            next_connection: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            open_connections: Mutex::new(HashMap::new()),
        }
    }

    fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    fn record(&self, request: ApiRequest) {
        lock(&self.requests).push(request);
    }

    /// A panicking script becomes a 500 instead of a silently dropped connection.
    fn run_script(&self, request: &ApiRequest) -> Reply {
        panic::catch_unwind(AssertUnwindSafe(|| (self.script)(request)))
            .unwrap_or_else(|_| Reply::Error { status: 500, message: "fake API script panicked".to_string() })
    }
}

/// A poisoned lock only means some thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        match incoming {
            Ok(stream) => spawn_connection(stream, shared),
            // Transient (e.g. out of descriptors): back off instead of spinning.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn spawn_connection(stream: TcpStream, shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    let _ = thread::Builder::new().name("fake-api-conn".into()).spawn(move || {
        let _ = serve_connection(stream, &shared);
    });
}

/// Removes a connection from the open set when its thread ends, however it ends.
struct ConnectionRegistration<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for ConnectionRegistration<'_> {
    fn drop(&mut self) {
        lock(&self.shared.open_connections).remove(&self.id);
    }
}

fn register_connection<'a>(shared: &'a Shared, stream: &TcpStream) -> io::Result<ConnectionRegistration<'a>> {
    let id = shared.next_connection.fetch_add(1, Ordering::SeqCst);
    lock(&shared.open_connections).insert(id, stream.try_clone()?);
    Ok(ConnectionRegistration { shared, id })
}

/// Serves keep-alive requests on one connection until EOF, error or timeout.
fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let _registration = register_connection(shared, &stream)?;
    // Drop may have swept open connections just before this one registered.
    if shared.stopping.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader, &mut writer)? {
        let response = route(shared, &request);
        let keep_alive = !request.wants_close();
        write_response(&mut writer, &response, keep_alive, request.method == "HEAD")?;
        if !keep_alive || shared.stopping.load(Ordering::SeqCst) {
            break;
        }
    }
    Ok(())
}

fn route(shared: &Shared, request: &HttpRequest) -> HttpResponse {
    let path = request.target.split('?').next().unwrap_or("");
    match (request.method.as_str(), path) {
        ("POST", _) if path.starts_with("/v1/messages/count_tokens") => {
            HttpResponse::json(200, &json!({ "input_tokens": 10 }))
        }
        ("POST", "/v1/messages") => handle_messages(shared, request),
        _ => HttpResponse::empty(404),
    }
}

fn handle_messages(shared: &Shared, http: &HttpRequest) -> HttpResponse {
    let Ok(body) = serde_json::from_slice::<Value>(&http.body) else {
        return error_response(400, "invalid_request_error", "request body is not valid JSON");
    };
    let request = ApiRequest { path: http.target.clone(), body };
    // Recorded before scripting so a panicking script still leaves a trace.
    shared.record(request.clone());
    match shared.run_script(&request) {
        Reply::Error { status, message } => error_response(status, "api_error", &message),
        Reply::QuotaExhausted { resets_at } => {
            let mut response =
                error_response(429, "rate_limit_error", "This request would exceed your rate limit.");
            let reset = resets_at.to_string();
            let wait = (resets_at
                - std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
                    as i64)
                .max(0);
            response.headers = vec![
                ("retry-after", wait.to_string()),
                ("anthropic-ratelimit-unified-status", "rejected".into()),
                ("anthropic-ratelimit-unified-reset", reset.clone()),
                ("anthropic-ratelimit-unified-5h-status", "rejected".into()),
                ("anthropic-ratelimit-unified-5h-reset", reset),
                ("anthropic-ratelimit-unified-representative-claim", "five_hour".into()),
            ];
            response
        }
        Reply::Text(text) => answer(&request, Turn::Text(text)),
        Reply::ToolUse { name, input } => {
            let id = format!("toolu_fake_{}", shared.fresh_id());
            answer(&request, Turn::ToolUse { id, name, input })
        }
    }
}

fn error_response(status: u16, error_type: &str, message: &str) -> HttpResponse {
    let body = json!({
        "type": "error",
        "error": { "type": error_type, "message": message },
    });
    HttpResponse::json(status, &body)
}

// ---------------------------------------------------------------------------
// Rendering an assistant turn (streamed or not)

/// The single content block of a successful assistant turn.
enum Turn {
    Text(String),
    ToolUse { id: String, name: String, input: Value },
}

impl Turn {
    fn stop_reason(&self) -> &'static str {
        match self {
            Turn::Text(_) => "end_turn",
            Turn::ToolUse { .. } => "tool_use",
        }
    }

    /// The finished block, as it appears in a non-streamed message.
    fn full_block(&self) -> Value {
        match self {
            Turn::Text(text) => json!({ "type": "text", "text": text }),
            Turn::ToolUse { id, name, input } => {
                json!({ "type": "tool_use", "id": id, "name": name, "input": input })
            }
        }
    }

    /// The empty block that opens a stream (`content_block_start`).
    fn start_block(&self) -> Value {
        match self {
            Turn::Text(_) => json!({ "type": "text", "text": "" }),
            Turn::ToolUse { id, name, .. } => {
                json!({ "type": "tool_use", "id": id, "name": name, "input": {} })
            }
        }
    }

    /// The one delta carrying the whole block content.
    fn delta(&self) -> Value {
        match self {
            Turn::Text(text) => json!({ "type": "text_delta", "text": text }),
            Turn::ToolUse { input, .. } => {
                json!({ "type": "input_json_delta", "partial_json": input.to_string() })
            }
        }
    }
}

fn answer(request: &ApiRequest, turn: Turn) -> HttpResponse {
    // Unique across every server of the test run, as the real API's ids are unique: a usage
    // report joins transcripts of several sessions and must not see two responses as one.
    static NEXT_MESSAGE: AtomicU64 = AtomicU64::new(1);
    let n = NEXT_MESSAGE.fetch_add(1, Ordering::SeqCst);
    let message_id = format!("msg_{n}");
    let mut response = if request.wants_stream() {
        let body = sse_body(&message_id, request.model(), &turn);
        HttpResponse {
            status: 200,
            content_type: Some("text/event-stream"),
            request_id: None,
            headers: Vec::new(),
            body,
        }
    } else {
        HttpResponse::json(200, &plain_message(&message_id, request.model(), &turn))
    };
    response.request_id = Some(format!("req_fake_{n}"));
    response
}

fn plain_message(message_id: &str, model: &str, turn: &Turn) -> Value {
    json!({
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [turn.full_block()],
        "stop_reason": turn.stop_reason(),
        "stop_sequence": null,
        "usage": usage_for(model).json(usage_for(model).output),
    })
}

/// The usage the server reports for one response: different per model family, so that a usage
/// report can be checked per model, to the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
}

impl Usage {
    /// The `usage` object of a response, with `output` tokens so far.
    fn json(&self, output: u64) -> Value {
        json!({
            "input_tokens": self.input,
            "output_tokens": output,
            "cache_creation_input_tokens": self.cache_write_5m + self.cache_write_1h,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
        })
    }
}

pub fn usage_for(model: &str) -> Usage {
    if model.contains("haiku") {
        Usage { input: 11, output: 7, cache_write_5m: 3, cache_write_1h: 2, cache_read: 13 }
    } else if model.contains("sonnet") {
        Usage { input: 53, output: 19, cache_write_5m: 0, cache_write_1h: 5, cache_read: 97 }
    } else {
        Usage { input: 101, output: 29, cache_write_5m: 17, cache_write_1h: 0, cache_read: 211 }
    }
}

/// The whole event stream, built up front so it can carry a Content-Length.
fn sse_body(message_id: &str, model: &str, turn: &Turn) -> Vec<u8> {
    let events = [
        json!({
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage_for(model).json(1),
            },
        }),
        json!({ "type": "content_block_start", "index": 0, "content_block": turn.start_block() }),
        json!({ "type": "content_block_delta", "index": 0, "delta": turn.delta() }),
        json!({ "type": "content_block_stop", "index": 0 }),
        json!({
            "type": "message_delta",
            "delta": { "stop_reason": turn.stop_reason(), "stop_sequence": null },
            "usage": { "output_tokens": usage_for(model).output },
        }),
        json!({ "type": "message_stop" }),
    ];
    events.iter().map(sse_event).collect::<String>().into_bytes()
}

/// `event: NAME\ndata: JSON\n\n`, where NAME is the payload's own `type`.
fn sse_event(payload: &Value) -> String {
    let name = payload.get("type").and_then(Value::as_str).unwrap_or("message");
    format!("event: {name}\ndata: {payload}\n\n")
}

// ---------------------------------------------------------------------------
// Minimal HTTP/1.1

struct HttpRequest {
    method: String,
    target: String,
    http_version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn header_contains(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|value| value.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    }

    /// HTTP/1.1 defaults to keep-alive; HTTP/1.0 defaults to close.
    fn wants_close(&self) -> bool {
        if self.http_version == "HTTP/1.0" {
            !self.header_contains("Connection", "keep-alive")
        } else {
            self.header_contains("Connection", "close")
        }
    }
}

struct HttpResponse {
    status: u16,
    content_type: Option<&'static str>,
    /// The `request-id` header the real API sends with each response (Claude Code records it
    /// in the transcript as `requestId`).
    request_id: Option<String>,
    /// Any other headers.
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn json(status: u16, body: &Value) -> HttpResponse {
        HttpResponse {
            status,
            content_type: Some("application/json"),
            request_id: None,
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }

    fn empty(status: u16) -> HttpResponse {
        HttpResponse { status, content_type: None, request_id: None, headers: Vec::new(), body: Vec::new() }
    }
}

fn invalid_data(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// Reads one CRLF- (or LF-) terminated line without its terminator;
/// `None` on EOF before any byte.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    let read = reader.by_ref().take(MAX_LINE_BYTES).read_line(&mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') {
        return Err(invalid_data("header line too long or truncated"));
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

/// Reads one request; `Ok(None)` means the peer closed the connection cleanly.
/// `writer` is only used to answer `Expect: 100-continue`.
fn read_request(reader: &mut impl BufRead, writer: &mut impl Write) -> io::Result<Option<HttpRequest>> {
    let Some(request_line) = read_request_line(reader)? else {
        return Ok(None);
    };
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid_data("malformed request line"));
    };
    let mut request = HttpRequest {
        method: method.to_string(),
        target: target.to_string(),
        http_version: version.to_string(),
        headers: read_headers(reader)?,
        body: Vec::new(),
    };
    if request.header_contains("Expect", "100-continue") {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    request.body = read_body(reader, &request)?;
    Ok(Some(request))
}

/// Skips stray blank lines some clients leave between pipelined requests.
fn read_request_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => return Ok(Some(line)),
        }
    }
}

fn read_headers(reader: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| invalid_data("EOF inside headers"))?;
        if line.is_empty() {
            return Ok(headers);
        }
        if headers.len() >= MAX_HEADERS {
            return Err(invalid_data("too many headers"));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid_data("bad header"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

fn read_body(reader: &mut impl BufRead, request: &HttpRequest) -> io::Result<Vec<u8>> {
    if request.header_contains("Transfer-Encoding", "chunked") {
        return read_chunked_body(reader);
    }
    match request.header("Content-Length") {
        Some(value) => {
            let length = value.parse::<usize>().map_err(|_| invalid_data("bad Content-Length"))?;
            read_exact_body(reader, length)
        }
        None => Ok(Vec::new()),
    }
}

fn read_exact_body(reader: &mut impl Read, length: usize) -> io::Result<Vec<u8>> {
    if length > MAX_BODY_BYTES {
        return Err(invalid_data("body too large"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn read_chunked_body(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?.ok_or_else(|| invalid_data("EOF in chunk size"))?;
        // Chunk extensions (";name=value") carry nothing we need.
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| invalid_data("bad chunk size"))?;
        if size == 0 {
            skip_trailers(reader)?;
            return Ok(body);
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(invalid_data("body too large"));
        }
        body.extend(read_exact_body(reader, size)?);
        // Each chunk's data is followed by its own CRLF.
        read_line(reader)?.ok_or_else(|| invalid_data("EOF after chunk"))?;
    }
}

fn skip_trailers(reader: &mut impl BufRead) -> io::Result<()> {
    while let Some(line) = read_line(reader)? {
        if line.is_empty() {
            break;
        }
    }
    Ok(())
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Unknown",
    }
}

fn write_response(
    writer: &mut impl Write,
    response: &HttpResponse,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason_phrase(response.status));
    if let Some(content_type) = response.content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if let Some(request_id) = &response.request_id {
        head.push_str(&format!("request-id: {request_id}\r\n"));
    }
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    head.push_str(if keep_alive { "Connection: keep-alive\r\n" } else { "Connection: close\r\n" });
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    if !head_only {
        writer.write_all(&response.body)?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parsed HTTP response as seen by a test client.
    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_str(&self.body).expect("response body is JSON")
        }

        /// The `data:` payloads of an SSE body, in order.
        fn sse_data(&self) -> Vec<Value> {
            self.body
                .lines()
                .filter_map(|line| line.strip_prefix("data: "))
                .map(|data| serde_json::from_str(data).expect("SSE data is JSON"))
                .collect()
        }
    }

    fn connect(api: &FakeApi) -> BufReader<TcpStream> {
        let stream = TcpStream::connect(api.addr).expect("connect to fake API");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set timeout");
        BufReader::new(stream)
    }

    fn send(conn: &mut BufReader<TcpStream>, method: &str, path: &str, body: &str) -> Response {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.get_mut().write_all(request.as_bytes()).expect("write request");
        read_response(conn)
    }

    fn read_response(conn: &mut BufReader<TcpStream>) -> Response {
        let status_line = read_line(conn).expect("read status").expect("status line");
        let status = status_line.split_whitespace().nth(1).expect("status code");
        let headers = read_headers(conn).expect("read headers");
        let length = headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, value)| value.parse::<usize>().expect("numeric Content-Length"))
            .expect("Content-Length present");
        let body = read_exact_body(conn, length).expect("read body");
        Response {
            status: status.parse().expect("numeric status"),
            headers,
            body: String::from_utf8(body).expect("UTF-8 body"),
        }
    }

    fn post_messages(api: &FakeApi, body: &Value) -> Response {
        send(&mut connect(api), "POST", "/v1/messages?beta=true", &body.to_string())
    }

    fn streaming_request(text: &str) -> Value {
        json!({
            "model": "claude-test",
            "stream": true,
            "messages": [{ "role": "user", "content": text }],
        })
    }

    #[test]
    fn text_reply_is_streamed_as_sse() {
        let api = FakeApi::start(|_| Reply::text("hello from the fake"));
        let response = post_messages(&api, &streaming_request("hi"));
        assert_eq!(response.status, 200);
        assert_eq!(response.header("Content-Type"), Some("text/event-stream"));
        assert!(response.body.starts_with("event: message_start\ndata: "));
        assert!(response.body.contains("hello from the fake"));
        assert!(response.body.contains("\"end_turn\""));
        let types: Vec<String> = response
            .sse_data()
            .iter()
            .map(|event| event["type"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            types,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(response.sse_data()[0]["message"]["model"], "claude-test");
    }

    #[test]
    fn tool_use_reply_streams_input_as_one_json_delta() {
        let input = json!({ "command": "ls -la", "nested": { "n": [1, 2, 3] } });
        let expected = input.clone();
        let api = FakeApi::start(move |_| Reply::ToolUse { name: "Bash".into(), input: input.clone() });
        let events = post_messages(&api, &streaming_request("run ls")).sse_data();
        let start = &events[1]["content_block"];
        assert_eq!(start["type"], "tool_use");
        assert_eq!(start["name"], "Bash");
        assert!(start["id"].as_str().unwrap_or_default().starts_with("toolu_fake_"));
        let delta = &events[2]["delta"];
        assert_eq!(delta["type"], "input_json_delta");
        let partial = delta["partial_json"].as_str().expect("partial_json is a string");
        assert_eq!(serde_json::from_str::<Value>(partial).expect("parses"), expected);
        assert_eq!(events[4]["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn tool_use_ids_are_unique() {
        let api = FakeApi::start(|_| Reply::agent("Explore", "look around"));
        let ids: Vec<String> = (0..3)
            .map(|_| {
                post_messages(&api, &streaming_request("go")).sse_data()[1]["content_block"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
        assert_ne!(ids[0], ids[2]);
    }

    #[test]
    fn keep_alive_serves_several_requests_on_one_connection() {
        let api = FakeApi::start(|request| Reply::text(format!("echo {}", request.last_user_text())));
        let mut conn = connect(&api);
        let first = send(&mut conn, "POST", "/v1/messages?beta=true", &streaming_request("one").to_string());
        let second = send(&mut conn, "POST", "/v1/messages?beta=true", &streaming_request("two").to_string());
        assert!(first.body.contains("echo one"));
        assert!(second.body.contains("echo two"));
        assert_eq!(api.requests().len(), 2);
    }

    #[test]
    fn chunked_request_body_is_accepted() {
        let api = FakeApi::start(|_| Reply::text("ok"));
        let mut conn = connect(&api);
        let body = streaming_request("chunky").to_string();
        let (head, tail) = body.split_at(10);
        let request = format!(
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x}\r\n{head}\r\n{:x};ext=1\r\n{tail}\r\n0\r\n\r\n",
            head.len(),
            tail.len()
        );
        conn.get_mut().write_all(request.as_bytes()).expect("write");
        assert_eq!(read_response(&mut conn).status, 200);
        assert_eq!(api.requests()[0].last_user_text(), "chunky");
    }

    #[test]
    fn count_tokens_and_other_paths_are_not_recorded() {
        let api = FakeApi::start(|_| Reply::text("unused"));
        let mut conn = connect(&api);
        let counted = send(&mut conn, "POST", "/v1/messages/count_tokens?beta=true", "{}");
        assert_eq!(counted.status, 200);
        assert_eq!(counted.json(), json!({ "input_tokens": 10 }));
        let missing = send(&mut conn, "GET", "/v1/models", "");
        assert_eq!(missing.status, 404);
        assert!(missing.body.is_empty());
        assert!(api.requests().is_empty());
    }

    #[test]
    fn invalid_json_gets_400_and_is_not_recorded() {
        let api = FakeApi::start(|_| Reply::text("unused"));
        let response = send(&mut connect(&api), "POST", "/v1/messages", "{not json");
        assert_eq!(response.status, 400);
        assert_eq!(response.json()["type"], "error");
        assert!(api.requests().is_empty());
    }

    #[test]
    fn error_reply_uses_status_and_anthropic_error_body() {
        let api = FakeApi::start(|_| Reply::Error { status: 529, message: "overloaded".into() });
        let response = post_messages(&api, &streaming_request("hi"));
        assert_eq!(response.status, 529);
        assert_eq!(
            response.json(),
            json!({ "type": "error", "error": { "type": "api_error", "message": "overloaded" } })
        );
        assert_eq!(api.requests().len(), 1, "errors are still recorded");
    }

    #[test]
    fn non_streaming_request_gets_plain_message() {
        let api = FakeApi::start(|_| Reply::text("plain"));
        let mut body = streaming_request("hi");
        body["stream"] = json!(false);
        let message = post_messages(&api, &body).json();
        assert_eq!(message["type"], "message");
        assert_eq!(message["model"], "claude-test");
        assert_eq!(message["content"], json!([{ "type": "text", "text": "plain" }]));
        assert_eq!(message["stop_reason"], "end_turn");
    }

    #[test]
    fn panicking_script_answers_500_but_keeps_the_record() {
        let api = FakeApi::start(|_| panic!("script bug"));
        let response = post_messages(&api, &streaming_request("boom"));
        assert_eq!(response.status, 500);
        assert_eq!(api.requests().len(), 1);
    }

    #[test]
    fn requests_are_recorded_in_arrival_order_with_path() {
        let api = FakeApi::start(|_| Reply::text("ok"));
        for word in ["first", "second", "third"] {
            post_messages(&api, &streaming_request(word));
        }
        let recorded = api.requests();
        let texts: Vec<String> = recorded.iter().map(ApiRequest::last_user_text).collect();
        assert_eq!(texts, ["first", "second", "third"]);
        assert_eq!(recorded[0].path, "/v1/messages?beta=true");
        assert_eq!(recorded[0].model(), "claude-test");
    }

    #[test]
    fn drop_stops_accepting_connections() {
        let api = FakeApi::start(|_| Reply::text("ok"));
        let mut idle = connect(&api);
        let addr = api.addr;
        drop(api);
        assert!(TcpStream::connect(addr).is_err(), "listener should be closed");
        let mut buf = [0u8; 1];
        assert_eq!(idle.read(&mut buf).expect("EOF, not timeout"), 0, "idle connection closed");
    }

    fn sample_request() -> ApiRequest {
        ApiRequest {
            path: "/v1/messages".into(),
            body: json!({
                "model": "claude-sonnet",
                "system": [
                    { "type": "text", "text": "You are Claude Code." },
                    { "type": "text", "text": "x-anthropic-billing: cc_is_subagent=true" },
                ],
                "messages": [
                    { "role": "user", "content": "start the task" },
                    { "role": "assistant", "content": [
                        { "type": "text", "text": "calling tools" },
                        { "type": "tool_use", "id": "t1", "name": "Bash", "input": {} },
                        { "type": "tool_use", "id": "t2", "name": "Read", "input": {} },
                    ]},
                    { "role": "user", "content": [
                        { "type": "tool_result", "tool_use_id": "t1", "content": "bash output" },
                        { "type": "tool_result", "tool_use_id": "t2", "content": [
                            { "type": "text", "text": "file line 1" },
                            { "type": "text", "text": "file line 2" },
                        ]},
                        { "type": "text", "text": "reminder" },
                    ]},
                ],
            }),
        }
    }

    #[test]
    fn helpers_read_a_tool_result_turn() {
        let request = sample_request();
        assert_eq!(request.model(), "claude-sonnet");
        assert!(request.is_subagent());
        assert!(request.ends_with_tool_result());
        assert_eq!(request.tool_result_texts(), ["bash output", "file line 1\nfile line 2"]);
        assert_eq!(
            request.message_text(),
            "start the task\ncalling tools\nbash output\nfile line 1\nfile line 2\nreminder"
        );
        assert_eq!(request.last_user_text(), "reminder");
    }

    #[test]
    fn helpers_on_a_plain_main_agent_turn() {
        let request = ApiRequest {
            path: "/v1/messages".into(),
            body: json!({
                "system": "You are Claude Code.",
                "messages": [
                    { "role": "user", "content": [{ "type": "text", "text": "a" }, { "type": "text", "text": "b" }] },
                    { "role": "assistant", "content": "done" },
                ],
            }),
        };
        assert_eq!(request.model(), "");
        assert!(!request.is_subagent());
        assert!(!request.ends_with_tool_result());
        assert!(request.tool_result_texts().is_empty());
        assert_eq!(request.last_user_text(), "a\nb");
        assert_eq!(request.message_text(), "a\nb\ndone");
    }

    #[test]
    fn agent_reply_builds_agent_tool_call() {
        let Reply::ToolUse { name, input } = Reply::agent("Plan", "one two three four five six seven") else {
            panic!("agent() must build a tool call");
        };
        assert_eq!(name, "Agent");
        assert_eq!(input["description"], "one two three four five");
        assert_eq!(input["prompt"], "one two three four five six seven");
        assert_eq!(input["subagent_type"], "Plan");
    }
}
