//! The grounding adapter around a detection (or pointing) answer: the family's native boxes (points) rewritten
//! into Gemini's `box_2d` (`point`), and a mask per box when the prompt asks for segmentation.

use std::sync::Arc;

use glimpse_core::grounding::{self, BoxConvention, Grounded, ImageGeometry, MaskModel};
use glimpse_core::media::ImageSource;
use glimpse_core::{GenerationStream, GlimpseError};

pub fn no_mask_model() -> GlimpseError {
    GlimpseError::FailedPrecondition(
        "This prompt asks for segmentation masks, and this server has no mask model: start it with \
         --mask-model <SAM or MobileSAM folder>, ask for boxes only (box_2d), or serve with --no-grounding to get \
         the model's raw answer."
            .into(),
    )
}

/// The grounding adapter on a detection answer: native boxes → Gemini's, plus a mask per box from `masks`
/// (run on a blocking thread: a SAM image encoder takes seconds on a CPU).
pub fn to_gemini_detections(
    stream: GenerationStream,
    convention: BoxConvention,
    grounded: Grounded,
    geometry: ImageGeometry,
    masks: Option<(Arc<dyn MaskModel>, Arc<ImageSource>)>,
) -> GenerationStream {
    grounding::buffer_and_convert(stream, move |text| async move {
        let Some(answer) = grounding::to_gemini_answer(&text, convention, grounded, geometry) else { return Ok(text) };
        let Some((model, source)) = masks else { return Ok(answer) };
        glimpse_core::priority::spawn_compute("mask task failed", move || grounding::add_masks(&answer, &source.decode()?, model.as_ref()))
            .await
    })
}
