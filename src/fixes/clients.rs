//! The levers of a client model (`traffic.pool`, `concurrency`): keep more
//! connections idle, or run fewer virtual users.
//!
//! With a pool, the TIME_WAIT that exhausts a client comes from the
//! connections the pool closes: returned while `max_idle` were already
//! idle (`closed_by.idle_overflow`, Go's `MaxIdleConnsPerHost = 2` under
//! load), or a connection per request when nothing is kept (k6's
//! `noConnectionReuse`). Raising `max_idle` toward the requests in flight
//! turns those closes into reuse. `keep_alive` (`requests_per_connection`)
//! and `rate` do not apply to such traffic: there `requests_per_connection`
//! is a limit per connection, and a closed loop has users, not a rate.

use super::{Change, Context, Grid, Plan, Search, AIM};
use crate::scenario::Close;

/// Most idle connections a search proposes per destination.
const MAX_IDLE: f64 = 1_000_000.0;

/// `traffic.pool.max_idle`: the smallest count that leaves nothing
/// failing, where the pool's own closes put the host's ports in TIME_WAIT.
pub fn pool_max_idle(cx: &Context) -> Option<Plan> {
    let c = cx.sc.traffic.client.as_deref()?;
    let conns = cx.report.connections.as_ref()?;
    let requests = cx.report.requests.as_ref()?;
    if !cx.host_ran_out()
        || cx.sc.traffic.close != Close::Client
        || conns.closed_by.idle_overflow == 0
    {
        return None;
    }
    let now = f64::from(c.pool.max_idle);
    // Enough idle connections for every request in flight at the peak
    // keeps them all, but far fewer usually do: the idle ones only need to
    // absorb the swings of the requests in flight. So the search starts one
    // above the current value and doubles its step: a probe that fails
    // stops at its first failure, and only the passing ones are complete
    // runs (a first guess at the peak cost a complete run per bisection
    // step on the way down).
    let peak = requests.peak_in_flight as f64;
    let limit = (4.0 * peak).max(now + 1.0).min(MAX_IDLE);
    if limit <= now {
        return None;
    }
    Some(Plan::Search(Search {
        from: now,
        guess: now + 1.0,
        limit,
        grid: Grid::Integer,
        changes: Box::new(|v| vec![Change::new("traffic.pool.max_idle", Grid::Integer.write(v))]),
    }))
}

/// `traffic.concurrency`: the most virtual users (one constant count) that
/// run without a failure.
pub fn concurrency(cx: &Context) -> Option<Plan> {
    let c = cx.sc.traffic.client.as_deref()?;
    let users = c.users.as_ref()?;
    if users.len() != 1 {
        return None;
    }
    let now = f64::from(users[0].1);
    if now <= 1.0 {
        return None;
    }
    Some(Plan::Search(Search {
        from: now,
        guess: (now * AIM / cx.load_factor()).floor().clamp(1.0, now - 1.0),
        limit: 1.0,
        grid: Grid::Integer,
        changes: Box::new(|v| vec![Change::new("traffic.concurrency", Grid::Integer.write(v))]),
    }))
}
