//! The keyed operator's exchange sends each record to the worker whose backend holds its key's
//! group: the backend of the worker `worker_of` picks accepts the key, for any worker count.

use keyedstate::MaxParallelism;
use keyedstate::heap::HeapBackend;
use keyedstate_timely::worker_of;

#[test]
fn worker_of_picks_the_worker_whose_backend_accepts_the_key() {
    for max in [128, 1024] {
        let max_p = MaxParallelism::new(max).unwrap();
        for peers in [1, 2, 3, 7] {
            let backends: Vec<_> = (0..peers)
                .map(|i| {
                    HeapBackend::open(max_p, max_p.range_for_subtask(peers, i).unwrap()).unwrap()
                })
                .collect();
            for key in 0..500u32 {
                let worker = worker_of(&key, max_p, peers) as usize;
                for (i, backend) in backends.iter().enumerate() {
                    let accepted = backend.set_current_key(&key).is_ok();
                    assert_eq!(
                        accepted,
                        i == worker,
                        "key {key}, {peers} workers, worker {i}"
                    );
                }
            }
            // Keys of another type: a backend of its own (a backend holds keys of one type).
            let name = format!("user-{peers}");
            let worker = worker_of(name.as_str(), max_p, peers);
            let range = max_p.range_for_subtask(peers, worker as u32).unwrap();
            let backend = HeapBackend::open(max_p, range).unwrap();
            backend.set_current_key(name.as_str()).unwrap();
        }
    }
}
