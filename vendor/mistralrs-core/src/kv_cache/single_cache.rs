use candle_core::{Result, Tensor};

/// Positions a cache's capacity is rounded up to.
const CAPACITY_GRAIN: usize = 64;

#[derive(Debug, Clone)]
pub struct SingleCache {
    // all_data is an option on a Tensor, this makes it possible to only create the actual tensor
    // on the first call where the batch size is easily known.
    // Also this makes it safe to clone a KvCache that has been reset (as in it will not share
    // its internal state with the cloned instance).
    pub all_data: Option<Tensor>,
    pub dim: usize,
    pub current_seq_len: usize,
    pub capacity_seq_len: usize,
    pub max_seq_len: usize,
}

impl SingleCache {
    pub fn new(dim: usize, max_seq_len: usize, capacity_seq_len: usize) -> Self {
        Self {
            all_data: None,
            dim,
            current_seq_len: 0,
            max_seq_len,
            capacity_seq_len,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn current_seq_len(&self) -> usize {
        self.current_seq_len
    }

    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    pub fn all_data(&self) -> Option<&Tensor> {
        self.all_data.as_ref()
    }

    pub fn current_data(&self) -> Result<Option<Tensor>> {
        let data = match self.all_data.as_ref() {
            None => None,
            Some(d) => Some(d.narrow(self.dim, 0, self.current_seq_len)?),
        };
        Ok(data)
    }

    pub fn reset(&mut self) {
        self.current_seq_len = 0;
        self.all_data = None;
    }

    pub fn try_set_len(&self, len: usize) -> candle_core::Result<()> {
        if len > self.capacity_seq_len {
            candle_core::bail!(
                "kv-cache: requested length ({}) exceeds current capacity ({})",
                len,
                self.capacity_seq_len
            );
        }
        Ok(())
    }

    pub fn set_len(&mut self, len: usize) -> candle_core::Result<()> {
        self.try_set_len(len)?;
        self.current_seq_len = len;
        Ok(())
    }

    /// Glimpse patch: this cache's tensor with `capacity` positions along its sequence dimension: its own when it
    /// has that many, else its current positions followed by zeros. A batch of sequences of one length takes the
    /// largest capacity among them (`NormalCacheManager::clone_in_cache`), since each grew by its own history. The
    /// padded tensor is made contiguous: `pad_with_zeros` concatenates along that dimension and leaves it strided,
    /// which `slice_set` refuses.
    pub fn data_with_capacity(&self, capacity: usize) -> Result<Tensor> {
        let Some(data) = self.all_data.as_ref() else {
            candle_core::bail!("kv-cache: no data to copy into a batch")
        };
        if data.dim(self.dim)? == capacity {
            return Ok(data.clone());
        }
        if capacity < self.current_seq_len {
            candle_core::bail!("kv-cache: {} positions do not fit a capacity of {capacity}", self.current_seq_len)
        }
        data.narrow(self.dim, 0, self.current_seq_len)?
            .pad_with_zeros(self.dim, 0, capacity - self.current_seq_len)?
            .contiguous()
    }

    /// Glimpse patch: the cache is allocated for the positions it holds, rounded up to [`CAPACITY_GRAIN`], and
    /// grows by half its size (not by 512 positions from a first 512). Upstream every sequence's cache, and every
    /// batch of sequences decoding together, held at least 512 positions per layer: 16 SmolVLM-256M-shaped
    /// sequences of ~100 tokens took 377 MB, written in fresh pages that this machine faults in at ~0.5 GB/s, so
    /// the prompt step and the first step of the batch each spent most of a second there. Growing by half keeps
    /// the copies of a long answer's cache amortised to a constant per token.
    pub fn append(&mut self, src: &Tensor) -> Result<()> {
        let seq_len = src.dim(self.dim)?;
        let needed = self.current_seq_len + seq_len;
        if needed > self.max_seq_len {
            candle_core::bail!(
                "kv-cache: requested length ({needed}) above max seq len ({})",
                self.max_seq_len
            )
        }
        let capacity = self.all_data.as_ref().map(|data| data.dim(self.dim)).transpose()?;
        if capacity.is_none_or(|capacity| needed > capacity) {
            let grown = capacity.map_or(needed, |capacity| needed.max(capacity + capacity / 2));
            self.capacity_seq_len = grown.next_multiple_of(CAPACITY_GRAIN).min(self.max_seq_len);
            let mut shape = src.dims().to_vec();
            shape[self.dim] = self.capacity_seq_len;
            let ad = Tensor::zeros(shape, src.dtype(), src.device())?;
            if let Some(old) = &self.all_data {
                ad.slice_set(old, self.dim, 0)?;
            }
            self.all_data = Some(ad);
        }

        let ad = self.all_data.as_mut().unwrap();

        ad.slice_set(src, self.dim, self.current_seq_len)?;
        self.current_seq_len += seq_len;
        Ok(())
    }
}
