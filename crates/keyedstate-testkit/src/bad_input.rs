//! Bad input: each a typed error, and nothing else changed.

use crate::fixture::{Factory, full};
use keyedstate_core::{
    ErrorKind, KeyGroupRange, ListStateDescriptor, MapStateDescriptor, MaxParallelism, StateCodec,
    ValueStateDescriptor,
};

pub fn reregistering_with_another_kind_is_incompatible(factory: &Factory) {
    let i = full(factory);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("s"))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&41).unwrap();
    let err = i
        .backend
        .list_state(&ListStateDescriptor::<u64>::new("s"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState);
    assert!(
        err.to_string().contains("'s'") && err.to_string().contains("value"),
        "{err}"
    );
    let err = i
        .backend
        .map_state(&MapStateDescriptor::<u64, u64>::new("s"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState);
    assert_eq!(
        value.get().unwrap(),
        Some(41),
        "the registered state is untouched"
    );
    let again = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("s"))
        .unwrap();
    assert_eq!(
        again.get().unwrap(),
        Some(41),
        "a compatible registration gets the same state"
    );
    assert_eq!(i.backend.states().unwrap().len(), 1);
}

pub fn reregistering_with_another_codec_is_incompatible(factory: &Factory) {
    let i = full(factory);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("s"))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&7).unwrap();
    let err = i
        .backend
        .value_state(&ValueStateDescriptor::<String>::new("s"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState);
    assert!(err.to_string().contains("codec"), "{err}");
    let renamed = StateCodec::<u64>::new().with_type_id("my.Counter");
    let err = i
        .backend
        .value_state(&ValueStateDescriptor::with_codec("s", renamed))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState);
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<u32, u64>::new("m"))
        .unwrap();
    map.put(&1, &1).unwrap();
    let err = i
        .backend
        .map_state(&MapStateDescriptor::<u64, u64>::new("m"))
        .err()
        .unwrap();
    assert_eq!(
        err.kind(),
        ErrorKind::IncompatibleState,
        "map user-key codec is checked too"
    );
    assert_eq!(value.get().unwrap(), Some(7));
    assert_eq!(map.get(&1).unwrap(), Some(1));
}

pub fn access_without_current_key_is_invalid(factory: &Factory) {
    let i = full(factory);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    let list = i
        .backend
        .list_state(&ListStateDescriptor::<u64>::new("l"))
        .unwrap();
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<u64, u64>::new("m"))
        .unwrap();
    for err in [
        value.get().unwrap_err(),
        value.update(&1).unwrap_err(),
        list.add(&1).unwrap_err(),
        map.put(&1, &1).unwrap_err(),
        map.entries().unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("no current key"), "{err}");
    }
    assert!(
        i.backend.keys::<u64, _>("v", &()).unwrap().is_empty(),
        "nothing was written"
    );
    assert!(i.backend.keys::<u64, _>("l", &()).unwrap().is_empty());
    assert!(i.backend.keys::<u64, _>("m", &()).unwrap().is_empty());
}

pub fn value_over_decode_limit_is_rejected(factory: &Factory) {
    let i = full(factory);
    let small = StateCodec::<Vec<u8>>::new().with_limit(1024).unwrap();
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::with_codec("v", small))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&vec![1u8; 1000]).unwrap();
    let err = value.update(&vec![2u8; 2000]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(
        value.get().unwrap(),
        Some(vec![1u8; 1000]),
        "the old value stays"
    );

    // Bytes written under a larger limit are refused, not decoded, under a smaller one.
    let large = i
        .backend
        .value_state(&ValueStateDescriptor::<Vec<u8>>::new("w"))
        .unwrap();
    large.update(&vec![3u8; 5000]).unwrap();
    let limited = StateCodec::<Vec<u8>>::new().with_limit(1024).unwrap();
    let reader = i
        .backend
        .value_state(&ValueStateDescriptor::with_codec("w", limited))
        .unwrap();
    let err = reader.get().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("decode limit"), "{err}");
    assert_eq!(large.get().unwrap().map(|v| v.len()), Some(5000));
    assert!(StateCodec::<u8>::new().with_limit(0).is_err());
}

pub fn key_outside_the_key_group_range_is_rejected(factory: &Factory) {
    let max_p = MaxParallelism::new(128).unwrap();
    let range = KeyGroupRange::new(0, 63, max_p).unwrap();
    let i = factory(max_p, range, keyedstate_core::ttl::system_clock());
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    let inside = crate::layout::key_in_group(max_p, 10);
    let outside = crate::layout::key_in_group(max_p, 100);
    i.backend.set_current_key(&inside).unwrap();
    value.update(&1).unwrap();
    let err = i.backend.set_current_key(&outside).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("key group 100"), "{err}");
    assert_eq!(
        value.get().unwrap_err().kind(),
        ErrorKind::InvalidArgument,
        "no key is current"
    );
    assert_eq!(i.backend.keys::<u64, _>("v", &()).unwrap(), vec![inside]);
}

pub fn invalid_state_names_are_rejected(factory: &Factory) {
    let i = full(factory);
    // `_keyedstate.` names are the internal (timer) states'.
    for name in [
        "",
        "default",
        "bad\nname",
        &"x".repeat(256),
        "_keyedstate.timers.event",
    ] {
        let err = i
            .backend
            .value_state(&ValueStateDescriptor::<u8>::new(name))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name:?}");
    }
    assert!(i.backend.states().unwrap().is_empty());
}

pub fn closed_backend_rejects_calls(factory: &Factory) {
    let i = full(factory);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&1).unwrap();
    i.backend.close().unwrap();
    assert_eq!(value.get().unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(
        i.backend.set_current_key(&1u64).unwrap_err().kind(),
        ErrorKind::Closed
    );
    let err = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("w"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Closed);
    i.backend.close().unwrap();
}

/// A key whose serialization fails partway when `fails`: one key type for both kinds, so the
/// failure is the serialization's, not a change of key type.
struct FlakyKey {
    id: u64,
    fails: bool,
}

impl serde::Serialize for FlakyKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeTuple};
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&self.id)?;
        if self.fails {
            return Err(S::Error::custom("this key cannot be serialized"));
        }
        tuple.serialize_element(&0u64)?;
        tuple.end()
    }
}

impl<'de> serde::Deserialize<'de> for FlakyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <(u64, u64)>::deserialize(d).map(|(id, _)| FlakyKey { id, fails: false })
    }
}

/// After a `set_current_key` that fails (the key does not serialize), no key is current: state
/// access and timers fail instead of using the previous key or half-written key bytes.
pub fn a_failed_set_current_key_leaves_no_current_key(factory: &Factory) {
    let i = full(factory);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    let timers = i.backend.timer_service().unwrap();
    i.backend
        .set_current_key(&FlakyKey {
            id: 1,
            fails: false,
        })
        .unwrap();
    value.update(&1).unwrap();
    let err = i
        .backend
        .set_current_key(&FlakyKey { id: 2, fails: true })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(i.backend.current_key_group().unwrap(), None);
    assert_eq!(
        value.get().unwrap_err().kind(),
        ErrorKind::InvalidArgument,
        "no key is current"
    );
    assert_eq!(
        value.update(&2).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let err = timers
        .register(keyedstate_core::TimeDomain::EventTime, &(), 5)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        timers
            .count(keyedstate_core::TimeDomain::EventTime)
            .unwrap(),
        0
    );
    i.backend
        .set_current_key(&FlakyKey {
            id: 1,
            fails: false,
        })
        .unwrap();
    assert_eq!(
        value.get().unwrap(),
        Some(1),
        "the earlier value is untouched"
    );
}

/// The keys of one backend are of one type: another type's bytes would belong to other key
/// groups (an `i64` key restored over `u64` keys misroutes every key), so a key of another
/// codec is `IncompatibleState` and leaves no current key.
pub fn a_key_of_another_type_is_incompatible(factory: &Factory) {
    let i = full(factory);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    i.backend.set_current_key(&7u64).unwrap();
    value.update(&1).unwrap();
    let err = i.backend.set_current_key(&7i64).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState, "{err}");
    assert!(err.to_string().contains("ks1:u64"), "{err}");
    assert!(err.to_string().contains("ks1:i64"), "{err}");
    assert_eq!(i.backend.current_key_group().unwrap(), None);
    i.backend.set_current_key(&7u64).unwrap();
    assert_eq!(value.get().unwrap(), Some(1));
}

/// A value whose `Serialize` calls back into the backend it is being written to (through a
/// thread-local, the only way a codec can reach it), and records what that call returned.
struct CallsTheBackend;

thread_local! {
    static REENTERED: std::cell::RefCell<Option<(keyedstate_core::KeyedStateBackend, Option<ErrorKind>)>> =
        const { std::cell::RefCell::new(None) };
}

impl serde::Serialize for CallsTheBackend {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        REENTERED.with(|slot| {
            let mut slot = slot.borrow_mut();
            if let Some((backend, seen)) = slot.as_mut() {
                *seen = backend.states().err().map(|e| e.kind());
            }
        });
        serializer.serialize_u8(7)
    }
}

impl<'de> serde::Deserialize<'de> for CallsTheBackend {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u8::deserialize(deserializer).map(|_| CallsTheBackend)
    }
}

pub fn a_codec_calling_the_backend_gets_an_error_not_a_deadlock(factory: &Factory) {
    let i = full(factory);
    let state = i
        .backend
        .value_state(&ValueStateDescriptor::<CallsTheBackend>::new("s"))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    REENTERED.with(|slot| *slot.borrow_mut() = Some((i.backend.clone(), None)));
    state.update(&CallsTheBackend).unwrap();
    let seen = REENTERED.with(|slot| slot.borrow_mut().take().and_then(|(_, seen)| seen));
    assert_eq!(
        seen,
        Some(ErrorKind::InvalidArgument),
        "the call from inside Serialize is refused"
    );
    assert!(state.get().unwrap().is_some(), "the outer write happened");
    assert_eq!(
        i.backend.states().unwrap().len(),
        1,
        "and the backend is usable"
    );
}
