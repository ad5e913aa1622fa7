//! Polling until something is reached, with a bound, so a test fails instead of hanging.

use std::time::Duration;

/// Calls `fetch` until what it returns satisfies `done`, at most `tries` times, `every` apart;
/// returns the last value, for the caller to assert on.
pub async fn poll<T>(tries: u32, every: Duration, mut fetch: impl AsyncFnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let mut value = fetch().await;
    for _ in 1..tries {
        if done(&value) {
            break;
        }
        tokio::time::sleep(every).await;
        value = fetch().await;
    }
    value
}

/// Waits until `condition` holds, checking every 50 ms; panics, naming `what`, after 10 s.
pub async fn wait_until(what: &str, condition: impl AsyncFnMut() -> bool) {
    let reached = poll(200, Duration::from_millis(50), condition, |reached| *reached).await;
    assert!(reached, "not reached in 10 s: {what}");
}
