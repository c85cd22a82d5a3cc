use super::StateHandle;
use crate::backend::{StateBackend, StateEngine};
use crate::codec::{Codec, HandleCodec};
use crate::descriptor::AggregateFunction;
use crate::error::Result;
use serde::Serialize;
use std::sync::Arc;

/// One accumulator per key and namespace; inputs are added with an [`AggregateFunction`] and
/// `get` returns its result.
pub struct AggregatingState<F: AggregateFunction, E: StateEngine + ?Sized = dyn StateBackend> {
    handle: StateHandle<E>,
    codec: HandleCodec<F::Acc>,
    function: Arc<F>,
}

impl<F: AggregateFunction, E: StateEngine + ?Sized> AggregatingState<F, E>
where
    F::Acc: 'static,
{
    pub(crate) fn new(
        handle: StateHandle<E>,
        codec: Arc<dyn Codec<F::Acc>>,
        function: Arc<F>,
    ) -> Self {
        AggregatingState {
            handle,
            codec: HandleCodec::new(codec),
            function,
        }
    }

    pub fn name(&self) -> &str {
        self.handle.name()
    }

    pub fn set_namespace<N: Serialize + ?Sized>(&mut self, namespace: &N) -> Result<()> {
        self.handle.set_namespace(namespace)
    }

    /// The result for the current key, or `None` when nothing was added.
    pub fn get(&self) -> Result<Option<F::Out>> {
        Ok(self
            .handle
            .read(None, &self.codec)?
            .map(|acc| self.function.result(&acc)))
    }

    pub fn add(&self, value: &F::In) -> Result<()> {
        // The aggregate function runs outside the backend's lock, so it may touch other state.
        let acc = match self.handle.read(None, &self.codec)? {
            Some(acc) => acc,
            None => self.function.create_accumulator(),
        };
        self.handle
            .write(None, &self.codec, &self.function.add(value, acc))
    }

    pub fn clear(&self) -> Result<()> {
        self.handle.delete()
    }

    /// Merges the accumulators of `sources` into the one of `target` (session windows).
    pub fn merge_namespaces<N: Serialize>(&self, target: &N, sources: &[N]) -> Result<()> {
        self.handle
            .merge_values(&self.codec, target, sources, |a, b| {
                self.function.merge(a, b)
            })
    }
}
