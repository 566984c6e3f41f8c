//! The models together, and the answer each task gets from what they find.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use glimpse_core::grounding::{self, MaskModel};
use glimpse_core::{GlimpseError, OutputConstraint};
use image::DynamicImage;
use serde_json::{json, Value};

use crate::classifier::{ClassScore, Classifier};
use crate::detector::{Detection, Detector};
use crate::error::ToolkitError;
use crate::ocr::{self, TextReader};
use crate::onnx::Runtime;
use crate::salient::{SalientMasks, ISNET_FILE};
use crate::task::Task;
use crate::vocabulary::{Mention, Vocabulary};

/// Detections below this score are not reported (CenterNet's scores run lower than most detectors').
pub const DETECTION_MIN_SCORE: f32 = 0.3;
/// Objects one detection answer lists at most (Gemini's own prompts ask for at most 25).
const MAX_OBJECTS: usize = 25;
/// Classifier answers list this many classes.
const TOP_K: usize = 5;
/// A class the classifier gives at least this probability counts as seen for presence questions.
const PRESENCE_MIN_PROBABILITY: f32 = 0.1;
/// A caption mentions the classifier's best guess only above this probability.
const CAPTION_MIN_PROBABILITY: f32 = 0.2;
/// What the honest answers point to.
const VLM_HINT: &str =
    "For free-form questions, serve a vision-language model: glimpse serve --model /path/to/Qwen2.5-VL-3B-Instruct.";
const SKILLS: &str = "The built-in toolkit (no --model) detects the 80 everyday object kinds of COCO (people, vehicles, \
animals, furniture, food, household items), counts them, answers whether something is there and where, reads text, \
classifies the picture into the 1,000 ImageNet classes and captions it from what it finds.";

pub struct Toolkit {
    detector: Detector,
    classifier: Classifier,
    reader: TextReader,
    masks: Option<Arc<SalientMasks>>,
    vocabulary: Vocabulary,
    runtime: Runtime,
}

impl Toolkit {
    /// Loads every model in `dir` on the runtime [`Runtime::choose`] picks.
    pub fn load(dir: &Path) -> Result<Self, ToolkitError> {
        Toolkit::load_on(Runtime::choose(dir)?, dir)
    }

    /// Loads every model in `dir` on `runtime`; the ISNet mask model is optional (it is fetched at set-up, not
    /// committed).
    pub fn load_on(runtime: Runtime, dir: &Path) -> Result<Self, ToolkitError> {
        let masks = if dir.join(ISNET_FILE).is_file() {
            Some(Arc::new(SalientMasks::load(runtime, dir)?))
        } else {
            tracing::warn!("{} is missing: segmentation masks are off (scripts/toolkit/fetch-isnet.sh fetches it)", dir.join(ISNET_FILE).display());
            None
        };
        Ok(Toolkit {
            detector: Detector::load(runtime, dir)?,
            classifier: Classifier::load(runtime, dir)?,
            reader: TextReader::load(runtime, dir)?,
            masks,
            runtime,
            vocabulary: Vocabulary::load(&dir.join("vocabulary.json"))?,
        })
    }

    /// What runs the models.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    pub fn reader(&self) -> &TextReader {
        &self.reader
    }

    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// The mask model, for other backends' segmentation answers too.
    pub fn masks(&self) -> Option<Arc<SalientMasks>> {
        self.masks.clone()
    }

    /// Refuses, before any work, what this toolkit cannot do for `task` under `constraint`.
    pub fn check(&self, task: &Task, constraint: &OutputConstraint) -> Result<(), GlimpseError> {
        if matches!(task, Task::Detect { masks: true }) && self.masks.is_none() {
            return Err(GlimpseError::FailedPrecondition(format!(
                "Segmentation masks need the ISNet mask model ({ISNET_FILE}), which is not installed: run scripts/toolkit/fetch-isnet.sh."
            )));
        }
        match constraint {
            OutputConstraint::JsonSchema(schema)
                if !matches!(task, Task::Detect { .. } | Task::Point { .. }) && !is_any_json(schema) && enum_options(schema).is_none() =>
            {
                Err(GlimpseError::FailedPrecondition(format!(
                    "The built-in toolkit fills only detection lists, enums and free JSON; this responseSchema needs a vision-language model. {VLM_HINT}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The answer to `task` about `image`, in the form `constraint` asks for.
    pub fn answer(&self, task: &Task, question: &str, image: &DynamicImage, constraint: &OutputConstraint) -> Result<String, GlimpseError> {
        self.check(task, constraint)?;
        let options = match constraint {
            OutputConstraint::Choice(options) => Some(options.clone()),
            OutputConstraint::JsonSchema(schema) => enum_options(schema),
            OutputConstraint::None => None,
        };
        if let Some(options) = options {
            let choice = self.choose(&options, image)?;
            return Ok(match constraint {
                OutputConstraint::JsonSchema(_) => Value::String(choice).to_string(),
                _ => choice,
            });
        }
        let text = match task {
            Task::Detect { masks } => return self.detection_answer(question, image, *masks),
            Task::Point { limit } => return self.point_answer(question, image, *limit),
            Task::Count(phrase) => self.count(phrase, image)?,
            Task::Presence(phrase) => self.presence(phrase, image)?,
            Task::ReadText => {
                let text = ocr::as_text(&self.reader.read(image)?);
                if text.is_empty() { "I can't find any text in this image.".to_string() } else { text }
            }
            Task::Classify => classification_sentence(&self.classifier.classify(image, TOP_K)?),
            Task::Caption => self.caption(image)?,
            Task::Unsupported => format!("I can't answer that with the built-in toolkit. {SKILLS} {VLM_HINT}"),
        };
        Ok(match constraint {
            OutputConstraint::JsonSchema(_) => json!({ "answer": text }).to_string(),
            _ => text,
        })
    }

    /// Detections of `classes` only.
    fn detections_of(&self, classes: &BTreeSet<usize>, image: &DynamicImage) -> Result<Vec<Detection>, ToolkitError> {
        let mut found = self.detector.detect(image, DETECTION_MIN_SCORE)?;
        found.retain(|d| classes.contains(&d.class));
        Ok(found)
    }

    /// Detections, limited to the classes the question names when it names any.
    fn detections_for(&self, question: &str, image: &DynamicImage) -> Result<Vec<Detection>, ToolkitError> {
        let mentions = self.vocabulary.mentions(question);
        let wanted: BTreeSet<usize> = mentions.iter().flat_map(|m| self.vocabulary.coco_classes(m)).collect();
        let mut found = self.detector.detect(image, DETECTION_MIN_SCORE)?;
        if !mentions.is_empty() {
            found.retain(|d| wanted.contains(&d.class));
        }
        found.truncate(MAX_OBJECTS);
        Ok(found)
    }

    fn detection_answer(&self, question: &str, image: &DynamicImage, masks: bool) -> Result<String, GlimpseError> {
        let (w, h) = (image.width(), image.height());
        let items: Vec<Value> = self
            .detections_for(question, image)?
            .iter()
            .map(|d| json!({ grounding::GEMINI_BOX_KEY: d.bbox.to_gemini(w, h), "label": d.label }))
            .collect();
        let answer = Value::Array(items).to_string();
        match (masks, &self.masks) {
            (true, Some(model)) => grounding::add_masks(&answer, image, model.as_ref() as &dyn MaskModel),
            _ => Ok(answer),
        }
    }

    /// Gemini's points (`[y, x]` on 0–1000, best first) at the centres of the detections the question asks for.
    fn point_answer(&self, question: &str, image: &DynamicImage, limit: Option<usize>) -> Result<String, GlimpseError> {
        let (w, h) = (image.width(), image.height());
        let mut found = self.detections_for(question, image)?;
        found.truncate(limit.unwrap_or(MAX_OBJECTS));
        let items: Vec<Value> = found
            .iter()
            .map(|d| json!({ grounding::GEMINI_POINT_KEY: grounding::box_centre(d.bbox.to_gemini(w, h)), "label": d.label }))
            .collect();
        Ok(Value::Array(items).to_string())
    }

    /// The COCO classes a question's phrase names, or an honest answer when it names none.
    fn coco_targets(&self, phrase: &str, verb: &str) -> Result<(Vec<Mention>, BTreeSet<usize>), String> {
        let mentions = self.vocabulary.mentions(phrase);
        let classes: BTreeSet<usize> = mentions.iter().flat_map(|m| self.vocabulary.coco_classes(m)).collect();
        if classes.is_empty() {
            return Err(format!(
                "I can't {verb} \"{phrase}\": the built-in toolkit's detector knows only the 80 COCO object kinds \
                 (people, vehicles, animals, furniture, food, household items). {VLM_HINT}"
            ));
        }
        Ok((mentions, classes))
    }

    fn count(&self, phrase: &str, image: &DynamicImage) -> Result<String, ToolkitError> {
        let classes = match self.coco_targets(phrase, "count") {
            Ok((_, classes)) => classes,
            Err(honest) => return Ok(honest),
        };
        let found = self.detections_of(&classes, image)?;
        let names = self.detector.class_names();
        let one_class = classes.len() == 1;
        let what = if one_class {
            let class = *classes.iter().next().unwrap_or(&0);
            self.vocabulary.coco_count(class, &names[class], found.len())
        } else {
            format!("{} {phrase}", found.len())
        };
        let verb = if found.len() == 1 { "is" } else { "are" };
        let mut answer = format!("There {verb} {what}.").replace("There are 0 ", "There are no ");
        if !one_class && !found.is_empty() {
            answer.pop();
            answer.push_str(&format!(": {}.", self.object_counts(&found)));
        }
        Ok(answer)
    }

    fn presence(&self, phrase: &str, image: &DynamicImage) -> Result<String, ToolkitError> {
        let mentions = self.vocabulary.mentions(phrase);
        if mentions.is_empty() {
            return Ok(format!("I can't tell whether there is \"{phrase}\": the built-in toolkit recognises only COCO objects and ImageNet classes. {VLM_HINT}"));
        }
        let classes: BTreeSet<usize> = mentions.iter().flat_map(|m| self.vocabulary.coco_classes(m)).collect();
        let found = self.detections_of(&classes, image)?;
        let (w, h) = (image.width(), image.height());
        if !found.is_empty() {
            return Ok(format!("Yes: {}.", self.places(found.iter().take(5), w, h)));
        }
        let imagenet: BTreeSet<usize> = mentions.iter().flat_map(|m| m.reach.imagenet.iter().copied()).collect();
        if !imagenet.is_empty() {
            let top = self.classifier.classify(image, TOP_K)?;
            if let Some(hit) = top.iter().find(|c| imagenet.contains(&c.class) && c.probability >= PRESENCE_MIN_PROBABILITY) {
                return Ok(format!("Yes: the picture looks like {} ({:.0}%).", article_name(&hit.label), hit.probability * 100.0));
            }
        }
        Ok(format!("No, I don't see any {phrase}."))
    }

    fn caption(&self, image: &DynamicImage) -> Result<String, ToolkitError> {
        let found = self.detector.detect(image, DETECTION_MIN_SCORE)?;
        let top = self.classifier.classify(image, 1)?;
        let text = ocr::as_text(&self.reader.read(image)?);
        let (w, h) = (image.width(), image.height());
        let mut sentences = Vec::new();
        if found.is_empty() {
            sentences.push("I see none of the 80 everyday object kinds my detector knows.".to_string());
        } else {
            sentences.push(format!("A picture with {}.", self.object_counts(&found)));
            let mut largest: Vec<&Detection> = found.iter().collect();
            largest.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
            let mut places = self.places(largest.into_iter().take(3), w, h);
            if let Some(first) = places.get(0..1) {
                places = first.to_uppercase() + &places[1..];
            }
            sentences.push(format!("{places}."));
        }
        if let Some(best) = top.first().filter(|c| c.probability >= CAPTION_MIN_PROBABILITY || found.is_empty()) {
            sentences.push(format!("As a whole it looks most like {} ({:.0}%).", article_name(&best.label), best.probability * 100.0));
        }
        if !text.is_empty() {
            sentences.push(format!("The text in it reads: \"{}\".", text.replace('\n', " / ")));
        }
        Ok(sentences.join(" "))
    }

    /// "2 kites at the top and a person in the lower left": objects with where they are, alike ones together.
    fn places<'a>(&self, objects: impl Iterator<Item = &'a Detection>, w: u32, h: u32) -> String {
        let mut groups: Vec<(usize, &'static str, usize)> = Vec::new();
        for d in objects {
            let at = d.bbox.position_words(w, h);
            match groups.iter_mut().find(|(class, place, _)| *class == d.class && *place == at) {
                Some((_, _, n)) => *n += 1,
                None => groups.push((d.class, at, 1)),
            }
        }
        let names = self.detector.class_names();
        let parts: Vec<String> = groups
            .iter()
            .map(|(class, at, n)| {
                let what = if *n == 1 { article_name(&names[*class]) } else { self.vocabulary.coco_count(*class, &names[*class], *n) };
                format!("{what} {at}")
            })
            .collect();
        join_and(&parts)
    }

    /// "2 horses, a person and a dog", most frequent first.
    fn object_counts(&self, found: &[Detection]) -> String {
        let names = self.detector.class_names();
        let mut counts: Vec<(usize, usize)> = Vec::new();
        for d in found {
            match counts.iter_mut().find(|(class, _)| *class == d.class) {
                Some((_, n)) => *n += 1,
                None => counts.push((d.class, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1));
        let parts: Vec<String> = counts
            .iter()
            .map(|(class, n)| if *n == 1 { article_name(&names[*class]) } else { self.vocabulary.coco_count(*class, &names[*class], *n) })
            .collect();
        join_and(&parts)
    }

    /// The option the models support best: the highest detection score or classifier probability among the
    /// classes each option names (the first option when none is recognised).
    fn choose(&self, options: &[String], image: &DynamicImage) -> Result<String, ToolkitError> {
        let found = self.detector.detect(image, DETECTION_MIN_SCORE)?;
        let top = self.classifier.classify(image, 1000)?;
        let score = |option: &String| -> f32 {
            self.vocabulary
                .mentions(option)
                .iter()
                .map(|m| {
                    let coco = self.vocabulary.coco_classes(m);
                    let detected = found.iter().filter(|d| coco.contains(&d.class)).map(|d| d.score).fold(0.0, f32::max);
                    let classified: f32 = top.iter().filter(|c| m.reach.imagenet.contains(&c.class)).map(|c| c.probability).sum();
                    detected.max(classified)
                })
                .fold(0.0, f32::max)
        };
        let best = options.iter().map(|o| (o, score(o))).fold(None::<(&String, f32)>, |best, (o, s)| match best {
            Some((_, bs)) if bs >= s => best,
            _ => Some((o, s)),
        });
        Ok(best.map(|(o, _)| o.clone()).unwrap_or_default())
    }
}

/// `{}` or `{"type": "object"}` without properties: any JSON will do.
fn is_any_json(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => map.is_empty() || (map.len() == 1 && map.get("type").and_then(Value::as_str) == Some("object")),
        _ => false,
    }
}

/// The options of a string-enum schema.
fn enum_options(schema: &Value) -> Option<Vec<String>> {
    let values = schema.get("enum")?.as_array()?;
    let options: Vec<String> = values.iter().filter_map(Value::as_str).map(String::from).collect();
    (!options.is_empty()).then_some(options)
}

fn classification_sentence(top: &[ClassScore]) -> String {
    let Some(best) = top.first() else { return "I can't classify this image.".into() };
    let rest: Vec<String> = top[1..].iter().map(|c| format!("{} ({:.0}%)", c.label, c.probability * 100.0)).collect();
    format!("This looks like {} ({:.0}%). Next most likely: {}.", article_name(&best.label), best.probability * 100.0, rest.join(", "))
}

/// "a dog", "an orange".
fn article_name(name: &str) -> String {
    let vowel = name.chars().next().is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {name}", if vowel { "an" } else { "a" })
}

/// "a", "a and b", "a, b and c".
fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrasing() {
        assert_eq!(join_and(&["a dog".into(), "a car".into(), "2 people".into()]), "a dog, a car and 2 people");
        assert_eq!(article_name("orange"), "an orange");
        assert!(is_any_json(&json!({})) && !is_any_json(&json!({"type": "object", "properties": {"a": {}}})));
        assert_eq!(enum_options(&json!({"type": "string", "enum": ["dog", "cat"]})), Some(vec!["dog".into(), "cat".into()]));
    }
}
