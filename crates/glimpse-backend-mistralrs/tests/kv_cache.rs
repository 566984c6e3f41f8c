//! The vendored engine's key/value cache (`mistralrs_core::SingleCache`, vendor/README.md twentieth change): it
//! holds every appended position in order, allocates for what it holds (not blocks of 512 positions), grows by half
//! so a long answer is copied a logarithmic number of times, and refuses to pass its maximum length.
//! The side-by-side tests (`parity.rs`) run batches through it, including a batch's cache built from sequences.

use candle_core::{Device, Tensor};
use mistralrs_core::SingleCache;

/// (batch, kv heads, positions, head dim), positions numbered from `first` so every position's values differ.
fn positions(first: usize, count: usize) -> Tensor {
    let values = Tensor::arange(first as u32, (first + count) as u32, &Device::Cpu).unwrap().to_dtype(candle_core::DType::F32).unwrap();
    values.reshape((1, 1, count, 1)).unwrap().broadcast_as((2, 3, count, 4)).unwrap().contiguous().unwrap()
}

fn capacity(cache: &SingleCache) -> usize {
    cache.all_data().unwrap().dims()[2]
}

#[test]
fn a_prompt_then_one_token_at_a_time_keeps_every_position_in_a_cache_sized_to_them() {
    let mut cache = SingleCache::new(2, 4096, 512);
    cache.append(&positions(0, 40)).unwrap();
    assert_eq!(capacity(&cache), 64, "a 40-token prompt's cache, rounded up to 64 positions");
    let mut capacities = vec![64];
    for len in 41..=1500 {
        cache.append(&positions(len - 1, 1)).unwrap();
        let held = capacity(&cache);
        assert!(held >= len && held <= len + len / 2 + 64, "{len} positions held in a capacity of {held}");
        if capacities.last() != Some(&held) {
            capacities.push(held);
        }
    }
    assert!(capacities.len() <= 10, "grown {} times for 1,500 positions: {capacities:?}", capacities.len() - 1);
    let want = positions(0, 1500).flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let got = cache.current_data().unwrap().unwrap().contiguous().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(got, want);
}

#[test]
fn a_long_chunk_grows_the_cache_at_once_and_the_maximum_length_is_kept() {
    let mut cache = SingleCache::new(2, 1000, 512);
    cache.append(&positions(0, 10)).unwrap();
    cache.append(&positions(10, 700)).unwrap();
    assert!(capacity(&cache) >= 710 && capacity(&cache) <= 1000);
    cache.append(&positions(710, 290)).unwrap();
    assert_eq!(capacity(&cache), 1000, "the capacity stops at the maximum length");
    assert!(cache.append(&positions(1000, 1)).is_err(), "a position past the maximum length is refused");
    let got = cache.current_data().unwrap().unwrap().contiguous().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(got, positions(0, 1000).flatten_all().unwrap().to_vec1::<f32>().unwrap());
}

#[test]
fn a_cache_padded_to_a_batchs_capacity_keeps_its_positions_and_can_be_copied_into_the_batch() {
    // Two sequences of one length that grew differently: one from a 40-token prompt (64 positions), one longer.
    let mut short = SingleCache::new(2, 4096, 512);
    short.append(&positions(0, 40)).unwrap();
    let padded = short.data_with_capacity(192).unwrap();
    assert_eq!(padded.dims(), &[2, 3, 192, 4]);
    assert!(padded.is_contiguous(), "slice_set refuses a strided tensor");
    let held = padded.narrow(2, 0, 40).unwrap().contiguous().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(held, positions(0, 40).flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let rest = padded.narrow(2, 40, 152).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(rest, 0.0, "the positions past the current length are zeros");
    let batch = Tensor::zeros((4, 3, 192, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    batch.slice_set(&padded, 0, 2).unwrap();

    assert_eq!(short.data_with_capacity(64).unwrap().dims()[2], 64, "its own capacity: its own tensor");
    assert!(short.data_with_capacity(32).is_err(), "a capacity below the current length is refused");
}
