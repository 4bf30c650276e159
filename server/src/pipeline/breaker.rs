//! A circuit breaker for calls to services outside MedVision (the LLM
//! endpoint, PubMed, a Qdrant server). After `threshold` consecutive
//! failures it opens: calls are refused at once and the pipeline degrades
//! (built-in report writer, embedded index) and says so. After `open_for`
//! it half-opens and lets one call through; its success closes the breaker,
//! its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    opened_at: Option<Instant>,
    /// A half-open trial call is in flight.
    trial: bool,
}

#[derive(Debug)]
pub struct Breaker {
    pub name: &'static str,
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(name: &'static str, threshold: u32, open_for: Duration) -> Self {
        Self {
            name,
            threshold: threshold.max(1),
            open_for,
            inner: Mutex::new(Inner {
                failures: 0,
                opened_at: None,
                trial: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters invalid.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        self.state_at(Instant::now())
    }

    fn state_at(&self, now: Instant) -> BreakerState {
        let i = self.lock();
        match i.opened_at {
            None => BreakerState::Closed,
            Some(t) if now.duration_since(t) >= self.open_for => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// May a call go out now? In the half-open state only one trial at a time.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut i = self.lock();
        match i.opened_at {
            None => true,
            Some(t) if now.duration_since(t) >= self.open_for && !i.trial => {
                i.trial = true;
                true
            }
            Some(_) => false,
        }
    }

    pub fn success(&self) {
        let mut i = self.lock();
        if i.opened_at.is_some() {
            tracing::info!(
                breaker = self.name,
                "circuit closed: the service answers again"
            );
        }
        i.failures = 0;
        i.opened_at = None;
        i.trial = false;
    }

    pub fn failure(&self) {
        let mut i = self.lock();
        i.failures += 1;
        let reopen = i.trial;
        i.trial = false;
        if reopen || (i.opened_at.is_none() && i.failures >= self.threshold) {
            tracing::warn!(
                breaker = self.name,
                failures = i.failures,
                "circuit open: calls refused for a while"
            );
            i.opened_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_half_opens_and_recovers() {
        let b = Breaker::new("test", 3, Duration::from_secs(30));
        for _ in 0..2 {
            assert!(b.allow());
            b.failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
        b.failure();
        let t0 = Instant::now();
        assert_eq!(b.state_at(t0), BreakerState::Open);
        assert!(!b.allow_at(t0));
        let later = t0 + Duration::from_secs(31);
        assert_eq!(b.state_at(later), BreakerState::HalfOpen);
        assert!(b.allow_at(later), "one trial call");
        assert!(!b.allow_at(later), "only one trial at a time");
        b.failure();
        let t1 = Instant::now();
        assert_eq!(b.state_at(t1), BreakerState::Open, "a failed trial reopens");
        let later = t1 + Duration::from_secs(31);
        assert!(b.allow_at(later));
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow() && b.allow());
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new("test", 2, Duration::from_secs(60));
        b.failure();
        b.success();
        b.failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
    }
}
