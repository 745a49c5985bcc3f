//! Active health checks: every member of a group with `check` gets a GET of the check
//! path every interval, on a connection of its own in the member's protocol (so that
//! a check neither waits for the pool nor keeps a connection in it). `fails` failures in a row take a member
//! out; `passes` passes in a row bring it back. Changes are logged.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use http::{header, HeaderValue, Request};

use crate::group::{ActiveCheck, Group, Member};
use crate::pool::Pool;

/// Starts the checks of every member of `group`, if it has checks.
pub(crate) fn spawn(group: &Arc<Group>) {
    for m in group.members().iter() {
        spawn_member(group, Arc::downgrade(m));
    }
}

/// Starts the checks of one member; they stop once the member or its group is gone.
pub(crate) fn spawn_member(group: &Arc<Group>, member: Weak<Member>) {
    if let Some(check) = group.check.clone() {
        tokio::spawn(run(Arc::downgrade(group), member, check));
    }
}

async fn run(group: Weak<Group>, member: Weak<Member>, check: ActiveCheck) {
    let mut tick = tokio::time::interval(check.interval);
    let (mut passes, mut fails) = (0u32, 0u32);
    loop {
        tick.tick().await;
        let Some(pool) = member.upgrade().map(|m| m.pool.clone()) else {
            return;
        };
        let outcome = probe(&pool, &check).await;
        let (Some(g), Some(m)) = (group.upgrade(), member.upgrade()) else {
            return;
        };
        let upstream = pool.upstream();
        match outcome {
            Ok(()) => {
                (passes, fails) = (passes + 1, 0);
                if passes >= check.passes && !m.up.swap(true, Ordering::AcqRel) {
                    tracing::info!(target: "wharf::proxy", group = %g.name, %upstream, passes, "upstream healthy again");
                }
            }
            Err(why) => {
                (passes, fails) = (0, fails + 1);
                if fails >= check.fails && m.up.swap(false, Ordering::AcqRel) {
                    tracing::warn!(target: "wharf::proxy", group = %g.name, %upstream, fails, reason = %why, "upstream failed its health check");
                }
            }
        }
    }
}

/// One check: a 2xx or 3xx answer to GET of the path within the timeout.
async fn probe(pool: &Pool, check: &ActiveCheck) -> Result<(), String> {
    let upstream = pool.upstream();
    let exchange = async {
        let sender = pool.connect(None).await.map_err(|e| e.to_string())?;
        let mut req = Request::new(crate::empty());
        *req.uri_mut() = check
            .path
            .parse()
            .map_err(|_| "bad check path".to_owned())?;
        let host =
            HeaderValue::from_str(upstream.authority().as_str()).map_err(|e| e.to_string())?;
        req.headers_mut().insert(header::HOST, host);
        req.headers_mut().insert(
            header::USER_AGENT,
            HeaderValue::from_static("wharf-health-check"),
        );
        sender.shape(&mut req, upstream);
        let res = sender.send(req, None, None).await.map_err(|e| e.reason)?;
        let status = res.status();
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(format!("status {}", status.as_u16()))
        }
    };
    match tokio::time::timeout(check.timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}
