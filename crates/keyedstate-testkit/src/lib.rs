//! The conformance suite every keyedstate backend passes, one module per feature, and a
//! reference model (`BTreeMap`) checked against a backend under random operations.
//!
//! A backend's test file instantiates the suite with [`conformance_suite!`], naming the backend
//! so that every test name shows it (`heap::value_state_get_update_clear`).

pub mod bad_input;
pub mod batches;
pub mod faults;
pub mod fixture;
pub mod fuzz;
pub mod job_model;
pub mod keys;
pub mod layout;
pub mod metrics;
pub mod model;
pub mod namespaces;
pub mod s3_server;
pub mod states;
pub mod timers;
pub mod ttl;

pub use fixture::{Factory, Instance, stored_entries};

/// Expands to a module `$backend` with one `#[test]` per conformance check, each calling
/// `$factory` (a `Fn(MaxParallelism, KeyGroupRange) -> Instance`) for its backends.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:ident, $factory:expr) => {
        mod $backend {
            use super::*;
            $crate::conformance_suite!(@tests $factory;
                states::value_state_get_update_clear,
                states::list_state_get_add_update_clear,
                states::list_get_into_replaces_the_vectors_contents_with_the_list,
                states::list_elements_of_every_frame_length_come_back,
                states::map_state_operations,
                states::map_iteration_lets_the_caller_use_state_and_remove_entries,
                states::clearing_a_large_map_removes_every_entry,
                states::map_iteration_follows_the_numeric_order_of_user_keys,
                batches::value_batches_match_per_record_calls,
                batches::a_batch_with_a_foreign_key_writes_nothing,
                batches::value_batches_apply_the_ttl,
                batches::list_and_map_batches_match_per_record_calls,
                states::reducing_state_folds_added_values,
                states::aggregating_state_accumulates,
                namespaces::namespaces_are_isolated,
                namespaces::merge_namespaces_combines_sources,
                namespaces::merge_namespaces_with_the_target_among_sources_counts_it_once,
                keys::keys_lists_each_key_of_a_namespace_once,
                keys::keys_of_a_state_without_entries_is_empty,
                keys::keys_iterate_lazily_while_the_caller_uses_state,
                layout::one_byte_prefix_at_max_parallelism_128,
                layout::two_byte_prefix_at_max_parallelism_129,
                layout::first_and_last_key_group,
                layout::empty_keys_are_valid_keys,
                layout::eight_byte_keys_have_the_entry_keys_of_their_serialized_bytes,
                layout::one_mib_values_roundtrip,
                bad_input::reregistering_with_another_kind_is_incompatible,
                bad_input::reregistering_with_another_codec_is_incompatible,
                bad_input::access_without_current_key_is_invalid,
                bad_input::value_over_decode_limit_is_rejected,
                bad_input::key_outside_the_key_group_range_is_rejected,
                bad_input::a_failed_set_current_key_leaves_no_current_key,
                bad_input::a_key_of_another_type_is_incompatible,
                bad_input::invalid_state_names_are_rejected,
                bad_input::closed_backend_rejects_calls,
                bad_input::a_codec_calling_the_backend_gets_an_error_not_a_deadlock,
                                model::random_operations_match_the_model,
                ttl::ttl_expires_exactly_at_the_boundary,
                ttl::ttl_returns_expired_values_until_cleaned_up_when_asked,
                ttl::ttl_on_read_and_write_renews_on_read,
                ttl::turning_ttl_on_or_off_is_incompatible,
                ttl::changing_the_ttl_of_a_state_applies_the_new_one,
                ttl::a_disabled_ttl_registers_the_state_without_ttl,
                ttl::map_iteration_skips_runs_of_expired_entries,
                                ttl::expired_entries_are_left_out_of_full_snapshots,
                                metrics::metrics_report_entries_and_sampled_latency,
                timers::timers_fire_in_timestamp_order_across_key_groups,
                timers::deleted_timers_do_not_fire_and_domains_are_apart,
                timers::timers_registered_while_firing_fire_too,
                timers::timer_services_of_one_backend_share_their_queues,
                timers::timers_follow_a_model_through_random_registers_deletes_and_firings,
            );
        }
    };
    (@tests $factory:expr; $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::$module::$test(&$factory);
            }
        )*
    };
}
