//! Timers: fired in timestamp order across key groups with their key set, deleted ones not
//! fired, the two time domains apart, timers registered while firing fired too.

use crate::fixture::{Factory, full};
use crate::model::Rng;
use keyedstate_core::TimeDomain;

pub fn timers_fire_in_timestamp_order_across_key_groups(factory: &Factory) {
    let i = full(factory);
    let timers = i.backend.timer_service().unwrap();
    let mut rng = Rng::new(7);
    let mut registered = Vec::new();
    for key in 0u64..200 {
        let timestamp = rng.below(10_000) as i64 - 5_000; // negative times sort right too
        i.backend.set_current_key(&key).unwrap();
        timers
            .register(TimeDomain::EventTime, &(key % 3), timestamp)
            .unwrap();
        registered.push((timestamp, key));
    }
    registered.sort();
    let mut fired = Vec::new();
    let count = timers
        .advance(TimeDomain::EventTime, 0, |timer| {
            let key: u64 = timer.key_as()?;
            assert_eq!(
                i.backend.current_key::<u64>()?,
                Some(key),
                "the timer's key is current"
            );
            assert_eq!(timer.namespace_as::<u64>()?, key % 3);
            fired.push((timer.timestamp, key));
            Ok(())
        })
        .unwrap();
    let due: Vec<(i64, u64)> = registered
        .iter()
        .copied()
        .filter(|(t, _)| *t <= 0)
        .collect();
    assert_eq!(count, due.len());
    let times: Vec<i64> = fired.iter().map(|f| f.0).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "timestamp order");
    fired.sort();
    assert_eq!(fired, due);
    assert_eq!(
        timers.count(TimeDomain::EventTime).unwrap(),
        200 - due.len()
    );
    let rest = timers
        .advance(TimeDomain::EventTime, i64::MAX, |_| Ok(()))
        .unwrap();
    assert_eq!(rest, 200 - due.len());
    assert_eq!(
        timers
            .advance(TimeDomain::EventTime, i64::MAX, |_| Ok(()))
            .unwrap(),
        0,
        "each fires once"
    );
}

pub fn deleted_timers_do_not_fire_and_domains_are_apart(factory: &Factory) {
    let i = full(factory);
    let timers = i.backend.timer_service().unwrap();
    for key in 0u64..20 {
        i.backend.set_current_key(&key).unwrap();
        timers
            .register(TimeDomain::EventTime, &(), key as i64)
            .unwrap();
        timers
            .register(TimeDomain::ProcessingTime, &(), 1000 + key as i64)
            .unwrap();
        if key % 2 == 0 {
            timers
                .delete(TimeDomain::EventTime, &(), key as i64)
                .unwrap();
        }
    }
    i.backend.set_current_key(&3u64).unwrap();
    timers.delete(TimeDomain::EventTime, &(), 999).unwrap(); // absent: nothing happens
    let mut fired = Vec::new();
    timers
        .advance(TimeDomain::EventTime, 100, |t| {
            fired.push(t.key_as::<u64>()?);
            Ok(())
        })
        .unwrap();
    assert_eq!(fired, (1..20).step_by(2).collect::<Vec<u64>>());
    let processing = timers.advance(TimeDomain::ProcessingTime, 1009, |t| {
        assert_eq!(t.domain, TimeDomain::ProcessingTime);
        Ok(())
    });
    assert_eq!(processing.unwrap(), 10);
    let err = {
        let fresh = full(factory);
        let service = fresh.backend.timer_service().unwrap();
        service.register(TimeDomain::EventTime, &(), 1).unwrap_err()
    };
    assert_eq!(
        err.kind(),
        keyedstate_core::ErrorKind::InvalidArgument,
        "a timer needs a current key"
    );
}

pub fn timers_registered_while_firing_fire_too(factory: &Factory) {
    let i = full(factory);
    let timers = i.backend.timer_service().unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    timers.register(TimeDomain::EventTime, &(), 10).unwrap();
    let mut fired = Vec::new();
    timers
        .advance(TimeDomain::EventTime, 100, |t| {
            fired.push(t.timestamp);
            if t.timestamp < 40 {
                timers.register(TimeDomain::EventTime, &(), t.timestamp + 10)?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(fired, vec![10, 20, 30, 40]);
}

/// Every timer service of a backend shares one set of queues: timers registered through one
/// fire through another, once, and none reports its queue out of step.
pub fn timer_services_of_one_backend_share_their_queues(factory: &Factory) {
    let i = full(factory);
    let first = i.backend.timer_service().unwrap();
    let second = i.backend.timer_service().unwrap();
    for key in 0u64..20 {
        i.backend.set_current_key(&key).unwrap();
        let service = if key % 2 == 0 { &first } else { &second };
        service
            .register(TimeDomain::EventTime, &(), key as i64)
            .unwrap();
    }
    // Deleting through one service a timer that the other one has as a head.
    i.backend.set_current_key(&1u64).unwrap();
    first.delete(TimeDomain::EventTime, &(), 1).unwrap();
    let mut fired = Vec::new();
    second
        .advance(TimeDomain::EventTime, 9, |t| {
            fired.push(t.timestamp);
            Ok(())
        })
        .unwrap();
    first
        .advance(TimeDomain::EventTime, 19, |t| {
            fired.push(t.timestamp);
            Ok(())
        })
        .unwrap();
    let expected: Vec<i64> = (0..20).filter(|&t| t != 1).collect();
    assert_eq!(
        fired, expected,
        "each timer fires once, in order, through either service"
    );
    let third = i.backend.timer_service().unwrap();
    assert_eq!(third.count(TimeDomain::EventTime).unwrap(), 0);
}

/// Random registrations, deletions and firings of far more timers per key group than an
/// engine's timer cache holds (4 key groups, up to ~1,000 timers each), against a model: every
/// firing yields exactly the model's due timers, in timestamp order, and nothing else stays; the
/// earliest timestamp (`next_timestamp`) is always the model's.
pub fn timers_follow_a_model_through_random_registers_deletes_and_firings(factory: &Factory) {
    use std::collections::BTreeSet;
    let i = crate::fixture::full_at(factory, 4);
    let timers = i.backend.timer_service().unwrap();
    let mut rng = Rng::new(0x7153);
    // (timestamp, key, namespace)
    let mut model: BTreeSet<(i64, u64, u8)> = BTreeSet::new();
    let mut now = 0i64;
    for round in 0..60 {
        for _ in 0..rng.below(200) {
            let (key, namespace) = (rng.below(2_000), rng.below(2) as u8);
            // Mostly ahead of the watermark, sometimes at or behind it (fires on the next advance).
            let timestamp = now + rng.below(3_000) as i64 - 100;
            i.backend.set_current_key(&key).unwrap();
            if rng.below(5) == 0 && !model.is_empty() {
                // Delete one that exists (or, half the time, one that may not).
                let &(t, k, n) = model
                    .iter()
                    .nth(rng.below(model.len() as u64) as usize)
                    .unwrap();
                let (t, k, n) = if rng.below(2) == 0 {
                    (t, k, n)
                } else {
                    (timestamp, key, namespace)
                };
                i.backend.set_current_key(&k).unwrap();
                timers.delete(TimeDomain::EventTime, &n, t).unwrap();
                model.remove(&(t, k, n));
            } else {
                timers
                    .register(TimeDomain::EventTime, &namespace, timestamp)
                    .unwrap();
                model.insert((timestamp, key, namespace));
            }
        }
        assert_eq!(
            timers.next_timestamp(TimeDomain::EventTime).unwrap(),
            model.first().map(|t| t.0),
            "round {round}: the earliest timer"
        );
        now += rng.below(600) as i64;
        let mut fired = Vec::new();
        timers
            .advance(TimeDomain::EventTime, now, |timer| {
                fired.push((
                    timer.timestamp,
                    timer.key_as::<u64>()?,
                    timer.namespace_as::<u8>()?,
                ));
                Ok(())
            })
            .unwrap();
        assert!(
            fired.windows(2).all(|w| w[0].0 <= w[1].0),
            "round {round}: timestamp order"
        );
        let due: Vec<_> = model.iter().copied().take_while(|t| t.0 <= now).collect();
        model.retain(|t| t.0 > now);
        fired.sort();
        assert_eq!(fired, due, "round {round}: the due timers, each once");
    }
    assert_eq!(timers.count(TimeDomain::EventTime).unwrap(), model.len());
    assert_eq!(
        timers.next_timestamp(TimeDomain::ProcessingTime).unwrap(),
        None,
        "the other domain has none"
    );
    let rest = timers
        .advance(TimeDomain::EventTime, i64::MAX, |_| Ok(()))
        .unwrap();
    assert_eq!(rest, model.len());
}
