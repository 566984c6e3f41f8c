//! Segmentation masks for detected boxes: SAM (ViT image encoder) or MobileSAM (TinyViT), run by
//! candle-transformers' `segment_anything` building blocks and prompted with a box, as Meta's `SamPredictor`
//! does (`predict(box=…, multimask_output=False)`).
//!
//! candle-transformers' own `Sam` takes point prompts only; the image encoder, prompt encoder and mask decoder
//! it is made of are public and read the original checkpoint's tensor names, so [`SamMasks`] assembles them
//! with box prompts and the predictor's pre- and post-processing (resize the long side to 1024, normalise, pad;
//! bilinear upsampling of the 256×256 logits back to the image).

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::segment_anything::image_encoder::ImageEncoderViT;
use candle_transformers::models::segment_anything::mask_decoder::MaskDecoder;
use candle_transformers::models::segment_anything::prompt_encoder::PromptEncoder;
use candle_transformers::models::segment_anything::tiny_vit::{tiny_vit_5m, TinyViT};
use glimpse_core::grounding::MaskModel;
use glimpse_core::GlimpseError;
use image::{DynamicImage, GrayImage, Luma};
use serde::Deserialize;

/// SAM's fixed sizes (all released checkpoints).
const IMAGE_SIZE: usize = 1024;
const PATCH_SIZE: usize = 16;
const PROMPT_EMBED_DIM: usize = 256;
const PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
const PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// `config.json` of a mask-model folder. SAM ViT-B: `{"encoder":"vit","encoder_embed_dim":768,
/// "encoder_depth":12,"encoder_num_heads":12,"encoder_global_attn_indexes":[2,5,8,11]}`; MobileSAM:
/// `{"encoder":"tiny_vit"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct SamConfig {
    pub encoder: EncoderKind,
    #[serde(default)]
    pub encoder_embed_dim: usize,
    #[serde(default)]
    pub encoder_depth: usize,
    #[serde(default)]
    pub encoder_num_heads: usize,
    #[serde(default)]
    pub encoder_global_attn_indexes: Vec<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    Vit,
    TinyVit,
}

enum Encoder {
    Vit(Box<ImageEncoderViT>),
    TinyVit(Box<TinyViT>),
}

impl Encoder {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Encoder::Vit(vit) => vit.forward(xs),
            Encoder::TinyVit(vit) => vit.forward(xs),
        }
    }
}

pub struct SamMasks {
    encoder: Encoder,
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
    device: Device,
    /// The folder name, for logs and errors.
    pub id: String,
}

/// One box's result, at the sizes `SamPredictor` returns them.
pub struct BoxSegmentation {
    /// The decoder's 256×256 logits (row-major).
    pub low_res_logits: Vec<f32>,
    pub predicted_iou: f32,
    /// `round(sigmoid(logit) * 255)` over the whole original image.
    pub probability: GrayImage,
}

fn engine(e: candle_core::Error) -> GlimpseError {
    GlimpseError::Engine(format!("mask model: {e}"))
}

impl SamMasks {
    /// Loads `config.json` and `model.safetensors` (float16 or float32) from `dir`.
    pub fn load(dir: &Path) -> Result<SamMasks, String> {
        let config_path = dir.join("config.json");
        let config: SamConfig = serde_json::from_str(
            &std::fs::read_to_string(&config_path).map_err(|e| format!("reading {}: {e}", config_path.display()))?,
        )
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
        let weights = dir.join("model.safetensors");
        let device = Device::Cpu;
        // SAFETY: the file is mapped read-only and not modified while the model lives.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| format!("{}: {e}", weights.display()))?;
        let encoder = match config.encoder {
            EncoderKind::Vit => Encoder::Vit(Box::new(
                ImageEncoderViT::new(
                    IMAGE_SIZE,
                    PATCH_SIZE,
                    3,
                    config.encoder_embed_dim,
                    config.encoder_depth,
                    config.encoder_num_heads,
                    PROMPT_EMBED_DIM,
                    true,
                    true,
                    true,
                    14,
                    &config.encoder_global_attn_indexes,
                    vb.pp("image_encoder"),
                )
                .map_err(|e| format!("image encoder: {e}"))?,
            )),
            EncoderKind::TinyVit => {
                Encoder::TinyVit(Box::new(tiny_vit_5m(vb.pp("image_encoder")).map_err(|e| format!("image encoder: {e}"))?))
            }
        };
        let grid = IMAGE_SIZE / PATCH_SIZE;
        let prompt_encoder =
            PromptEncoder::new(PROMPT_EMBED_DIM, (grid, grid), (IMAGE_SIZE, IMAGE_SIZE), 16, vb.pp("prompt_encoder"))
                .map_err(|e| format!("prompt encoder: {e}"))?;
        let mask_decoder =
            MaskDecoder::new(PROMPT_EMBED_DIM, 3, 3, 256, vb.pp("mask_decoder")).map_err(|e| format!("mask decoder: {e}"))?;
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(SamMasks { encoder, prompt_encoder, mask_decoder, device, id })
    }

    /// `SamPredictor.set_image` + `predict(box=…, multimask_output=False)` for each box (pixels x0, y0, x1, y1
    /// of `image`); the image is encoded once.
    pub fn segment(&self, image: &DynamicImage, boxes: &[[f64; 4]]) -> Result<Vec<BoxSegmentation>, GlimpseError> {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let scale = IMAGE_SIZE as f64 / width.max(height) as f64;
        let (new_w, new_h) = ((width as f64 * scale + 0.5) as usize, (height as f64 * scale + 0.5) as usize);
        let embeddings = self.encoder.forward(&self.preprocess(image, new_w, new_h)?).map_err(engine)?;
        let image_pe = self.prompt_encoder.get_dense_pe().map_err(engine)?;
        let (sx, sy) = (new_w as f64 / width as f64, new_h as f64 / height as f64);
        boxes
            .iter()
            .map(|b| {
                let scaled = [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy].map(|v| v as f32);
                let boxes = Tensor::from_slice(&scaled, (1, 4), &self.device).map_err(engine)?;
                let (sparse, dense) = self.prompt_encoder.forward(None, Some(&boxes), None).map_err(engine)?;
                // candle-transformers 0.10.2 concatenates the two corner embeddings along the feature axis
                // ((1, 512)); SAM's decoder wants them as two tokens ((1, 2, 256)), in the same order.
                let sparse = sparse.reshape((1, 2, PROMPT_EMBED_DIM)).map_err(engine)?;
                let (low_res, iou) =
                    self.mask_decoder.forward(&embeddings, &image_pe, &sparse, &dense, false).map_err(engine)?;
                let full = low_res
                    .upsample_bilinear2d(IMAGE_SIZE, IMAGE_SIZE, false)
                    .and_then(|t| t.i((.., .., ..new_h, ..new_w)))
                    .and_then(|t| t.contiguous())
                    .and_then(|t| t.upsample_bilinear2d(height, width, false))
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(engine)?;
                let probability = GrayImage::from_fn(width as u32, height as u32, |x, y| {
                    let logit = full[y as usize * width + x as usize];
                    Luma([(255.0 / (1.0 + (-logit).exp())).round() as u8])
                });
                Ok(BoxSegmentation {
                    low_res_logits: low_res.flatten_all().and_then(|t| t.to_vec1()).map_err(engine)?,
                    predicted_iou: iou.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(engine)?[0],
                    probability,
                })
            })
            .collect()
    }

    /// Resized to (new_w, new_h), normalised, zero-padded to 1024×1024: (1, 3, 1024, 1024).
    fn preprocess(&self, image: &DynamicImage, new_w: usize, new_h: usize) -> Result<Tensor, GlimpseError> {
        let rgb = if (new_w, new_h) == (image.width() as usize, image.height() as usize) {
            image.to_rgb8()
        } else {
            image.resize_exact(new_w as u32, new_h as u32, image::imageops::FilterType::Triangle).to_rgb8()
        };
        let mut data = vec![0f32; 3 * IMAGE_SIZE * IMAGE_SIZE];
        for (x, y, pixel) in rgb.enumerate_pixels() {
            for c in 0..3 {
                data[c * IMAGE_SIZE * IMAGE_SIZE + y as usize * IMAGE_SIZE + x as usize] =
                    (pixel[c] as f32 - PIXEL_MEAN[c]) / PIXEL_STD[c];
            }
        }
        Tensor::from_vec(data, (1, 3, IMAGE_SIZE, IMAGE_SIZE), &self.device).map_err(engine)
    }
}

impl MaskModel for SamMasks {
    fn box_masks(&self, image: &DynamicImage, boxes: &[[f64; 4]]) -> Result<Vec<GrayImage>, GlimpseError> {
        let segmentations = self.segment(image, boxes)?;
        Ok(segmentations
            .into_iter()
            .zip(boxes)
            .map(|(seg, b)| {
                let (x0, y0, x1, y1) = glimpse_core::grounding::pixel_crop(*b, (image.width(), image.height()));
                image::imageops::crop_imm(&seg.probability, x0, y0, x1 - x0, y1 - y0).to_image()
            })
            .collect())
    }
}
