//! The notifier: a thread of its own that takes events from a bounded queue (the proxy only
//! ever `try_send`s: a full queue drops the event and counts it), rate-limits them per kind
//! and relay, and delivers them; once a second it also looks for relays newly out of balance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::deliver::Channels;
use super::detect::{events_of, newly_exhausted};
use super::rate::{RateLimit, Verdict};
use super::{Event, EventKind, NotifySettings};
use crate::proxy::ProxyState;
use crate::record::{Outcome, RecordSink, RequestRecord};
use crate::routing::select::Skip;
use crate::time::now_ms;

/// Events waiting for delivery; past this they are dropped (and counted).
const QUEUE: usize = 64;
/// How often an idle notifier checks whether it is closing.
const CLOSING_CHECK: Duration = Duration::from_millis(100);
/// How often the relays' exhaustion is looked at.
const EXHAUSTION_POLL: Duration = Duration::from_secs(1);

/// Where events go: cheap to clone, never blocks.
#[derive(Clone)]
pub struct NotifyHandle {
    queue: SyncSender<Event>,
    dropped: Arc<AtomicU64>,
}

impl NotifyHandle {
    /// Queues `event`, or drops it (counted) when the queue is full.
    pub fn send(&self, event: Event) {
        if let Err(TrySendError::Full(_)) = self.queue.try_send(event) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The notifier thread.
pub struct Notifier {
    handle: NotifyHandle,
    /// Set by [`Notifier::stop`]: the thread delivers what is queued and ends, whoever still
    /// holds a handle.
    closing: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Notifier {
    /// Starts delivering through `channels`.
    pub fn start(settings: &NotifySettings, channels: Channels) -> Self {
        let (queue, inbox) = sync_channel(QUEUE);
        let handle = NotifyHandle {
            queue,
            dropped: Arc::default(),
        };
        let window_ms = settings.rate_limit_secs.saturating_mul(1000);
        let closing = Arc::new(AtomicBool::new(false));
        let closed = closing.clone();
        let thread = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || run(inbox, channels, RateLimit::new(window_ms), &closed))
            .expect("start the notify thread");
        Self {
            handle,
            closing,
            thread,
        }
    }

    pub fn handle(&self) -> NotifyHandle {
        self.handle.clone()
    }

    /// Delivers what is queued (each delivery bounded by its timeout) and ends the thread.
    pub fn stop(self) {
        self.closing.store(true, Ordering::Relaxed);
        drop(self.handle);
        let _ = self.thread.join();
    }
}

fn run(inbox: Receiver<Event>, channels: Channels, mut limit: RateLimit, closing: &AtomicBool) {
    let started = Instant::now();
    loop {
        match inbox.recv_timeout(CLOSING_CHECK) {
            Ok(event) => {
                let now = started.elapsed().as_millis() as u64;
                deliver(&channels, &mut limit, event, now);
            }
            Err(RecvTimeoutError::Timeout) if !closing.load(Ordering::Relaxed) => {}
            // Closing and nothing queued, or no handle left.
            Err(_) => return,
        }
    }
}

/// One event through the rate limit (at `now` on the thread's own monotonic clock) and out.
fn deliver(channels: &Channels, limit: &mut RateLimit, mut event: Event, now: u64) {
    let relay = event.relay.clone().unwrap_or_default();
    match limit.admit(event.kind, &relay, now) {
        Verdict::Hold => {}
        Verdict::Send { suppressed } => {
            event.suppressed = suppressed;
            for problem in channels.deliver(&event) {
                tracing::warn!(
                    "notification {} not delivered: {problem}",
                    event.kind.as_str()
                );
            }
        }
    }
}

/// Looks once a second for relays newly out of balance and queues an event for each. The
/// relays out of balance at the first look are taken as they are (no event for an
/// exhaustion kept from before a restart).
pub struct ExhaustionWatch {
    stop: std::sync::mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl ExhaustionWatch {
    pub fn start(state: Arc<ProxyState>, notify: NotifyHandle) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("notify-exhaustion".into())
            .spawn(move || {
                let mut before: BTreeSet<String> = exhausted_relays(&state).into_keys().collect();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EXHAUSTION_POLL) {
                    let now = exhausted_relays(&state);
                    for event in newly_exhausted(&before, &now, now_ms()) {
                        notify.send(event);
                    }
                    before = now.into_keys().collect();
                }
            })
            .expect("start the exhaustion watch thread");
        Self { stop, thread }
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// The relays of the plan in force that are out of balance now, with why.
pub fn exhausted_relays(state: &ProxyState) -> BTreeMap<String, String> {
    let plan = state.plan();
    let now = state.clock().now();
    plan.graph
        .upstreams
        .iter()
        .filter_map(|upstream| {
            match state
                .routing
                .skip_reason(upstream, None, false, false, true, now)?
            {
                Skip::Exhausted { reason, .. } => Some((upstream.key().to_string(), reason)),
                _ => None,
            }
        })
        .collect()
}

/// The record sink that turns finished requests into events (failover, all blocked): the
/// detection is a look at the record, the delivery is the notifier thread's.
pub struct NotifySink {
    pub inner: Arc<dyn RecordSink>,
    pub notify: NotifyHandle,
    pub failover: bool,
    pub all_blocked: bool,
}

impl NotifySink {
    pub fn new(
        inner: Arc<dyn RecordSink>,
        notify: NotifyHandle,
        settings: &NotifySettings,
    ) -> Self {
        Self {
            inner,
            notify,
            failover: settings.wants(EventKind::Failover),
            all_blocked: settings.wants(EventKind::AllBlocked),
        }
    }
}

impl RecordSink for NotifySink {
    fn started(&self, record: &RequestRecord) {
        self.inner.started(record);
    }

    fn abandoned(&self, record: &RequestRecord) {
        self.inner.abandoned(record);
    }

    fn record(&self, record: &Arc<RequestRecord>, outcome: Outcome) {
        self.inner.record(record, outcome);
        if !self.failover && !self.all_blocked {
            return;
        }
        for event in events_of(record, outcome, now_ms()) {
            let wanted = match event.kind {
                EventKind::Failover => self.failover,
                EventKind::AllBlocked => self.all_blocked,
                _ => false,
            };
            if wanted {
                self.notify.send(event);
            }
        }
    }
}
