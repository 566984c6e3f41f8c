//! Words users write ("the dogs", "animals", "a sofa", "vehicles") → the detector's COCO classes and the
//! classifier's ImageNet classes, through each class's names and synonyms and its WordNet hypernyms
//! (`models/toolkit/vocabulary.json`, made by `scripts/toolkit/make_vocabulary.py`; plural forms included).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;

use crate::error::ToolkitError;

/// Longest phrase looked up, in words.
const MAX_PHRASE_WORDS: usize = 4;

/// Words of the answer-format boilerplate that prompts carry ("box_2d", "the segmentation mask in key \"mask\"",
/// "in the image") and generic nouns, which must never select a class even where WordNet knows them (ImageNet
/// has a "mask", containers have "box" as an ancestor).
const NOT_TARGETS: &[&str] = &[
    "image", "images", "picture", "pictures", "photo", "photos", "photograph", "box", "boxes", "bounding", "mask",
    "masks", "label", "labels", "key", "keys", "list", "lists", "entry", "entries", "text", "texts", "item", "items",
    "object", "objects", "thing", "things", "output", "json", "point", "points", "line", "lines", "top", "bottom",
    "left", "right", "center", "centre", "middle", "side", "front", "back", "color", "colour", "colors", "colours",
    "kind", "kinds", "type", "types", "class", "classes", "number", "numbers", "word", "words", "one", "ones", "lot",
    "part", "parts", "area", "scene", "view", "background", "foreground", "shape", "shapes", "size", "piece",
    "pieces", "set", "group", "pair", "mark", "marks", "segmentation", "coordinates", "format", "answer", "question",
    "detail", "details", "position", "positions", "location", "locations", "instance", "instances", "example",
];

#[derive(Deserialize)]
struct ClassEntry {
    name: String,
    #[serde(default)]
    terms: Vec<String>,
    #[serde(default)]
    hypernyms: Vec<String>,
}

#[derive(Deserialize)]
struct VocabularyFile {
    coco: Vec<ClassEntry>,
    imagenet: Vec<ClassEntry>,
}

/// The classes a phrase reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    pub coco: BTreeSet<usize>,
    pub imagenet: BTreeSet<usize>,
}

/// A phrase of the prompt that names classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub phrase: String,
    pub reach: Reach,
}

pub struct Vocabulary {
    index: HashMap<String, Reach>,
    /// For each ImageNet class, the COCO class it is a kind of (German shepherd → dog), if any.
    imagenet_to_coco: Vec<Option<usize>>,
    coco_plurals: Vec<String>,
}

impl Vocabulary {
    pub fn load(path: &Path) -> Result<Self, ToolkitError> {
        let fail = |reason: String| ToolkitError::Labels { file: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let file: VocabularyFile = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        Ok(Self::from_file(file))
    }

    fn from_file(file: VocabularyFile) -> Self {
        let mut index: HashMap<String, Reach> = HashMap::new();
        let ignored: BTreeSet<&str> = NOT_TARGETS.iter().copied().collect();
        let mut add = |word: &str, coco: Option<usize>, imagenet: Option<usize>| {
            let word = normalise(word);
            if word.is_empty() || ignored.contains(word.as_str()) {
                return;
            }
            let reach = index.entry(word).or_default();
            reach.coco.extend(coco);
            reach.imagenet.extend(imagenet);
        };
        for (i, class) in file.coco.iter().enumerate() {
            for word in std::iter::once(&class.name).chain(&class.terms).chain(&class.hypernyms) {
                add(word, Some(i), None);
            }
        }
        for (i, class) in file.imagenet.iter().enumerate() {
            for word in std::iter::once(&class.name).chain(&class.terms).chain(&class.hypernyms) {
                add(word, None, Some(i));
            }
        }
        let coco_names: Vec<String> = file.coco.iter().map(|c| normalise(&c.name)).collect();
        let imagenet_to_coco = file
            .imagenet
            .iter()
            .map(|class| {
                let words: BTreeSet<String> = class.terms.iter().chain(&class.hypernyms).map(|w| normalise(w)).collect();
                coco_names.iter().position(|name| words.contains(name))
            })
            .collect();
        let coco_plurals = coco_names.iter().map(|n| plural(n)).collect();
        Vocabulary { index, imagenet_to_coco, coco_plurals }
    }

    /// The phrases of `text` that name classes, longest match first, left to right.
    pub fn mentions(&self, text: &str) -> Vec<Mention> {
        let words: Vec<String> = normalise(text).split(' ').filter(|w| !w.is_empty()).map(String::from).collect();
        let mut found = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let longest = (1..=MAX_PHRASE_WORDS.min(words.len() - i)).rev().find_map(|n| {
                let phrase = words[i..i + n].join(" ");
                self.index.get(&phrase).map(|reach| (n, Mention { phrase, reach: reach.clone() }))
            });
            match longest {
                Some((n, mention)) => {
                    found.push(mention);
                    i += n;
                }
                None => i += 1,
            }
        }
        found
    }

    /// The COCO classes a mention stands for: its own, else those its ImageNet classes are kinds of.
    pub fn coco_classes(&self, mention: &Mention) -> BTreeSet<usize> {
        if !mention.reach.coco.is_empty() {
            return mention.reach.coco.clone();
        }
        mention.reach.imagenet.iter().filter_map(|i| self.imagenet_to_coco.get(*i).copied().flatten()).collect()
    }

    /// The COCO class name for `count` objects ("1 dog", "3 dogs", "2 people").
    pub fn coco_count(&self, class: usize, name: &str, count: usize) -> String {
        if count == 1 {
            format!("1 {name}")
        } else {
            format!("{count} {}", self.coco_plurals.get(class).cloned().unwrap_or_else(|| plural(name)))
        }
    }
}

/// Lowercase ASCII words separated by single spaces (`box_2d` → `box 2d`, `T-shirt` → `t shirt`).
fn normalise(text: &str) -> String {
    let lowered: String = text.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    lowered.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// English plural of a class name (its last word).
pub fn plural(name: &str) -> String {
    const IRREGULAR: &[(&str, &str)] = &[
        ("person", "people"), ("sheep", "sheep"), ("mouse", "mice"), ("knife", "knives"), ("skis", "skis"),
        ("scissors", "scissors"), ("broccoli", "broccoli"), ("man", "men"), ("woman", "women"), ("child", "children"),
    ];
    let (head, last) = name.rsplit_once(' ').map_or(("", name), |(h, l)| (h, l));
    let last_plural = IRREGULAR.iter().find(|(s, _)| *s == last).map(|(_, p)| p.to_string()).unwrap_or_else(|| {
        if last.ends_with('s') || last.ends_with('x') || last.ends_with("ch") || last.ends_with("sh") {
            format!("{last}es")
        } else if last.ends_with('y') && !last.ends_with("ey") && !last.ends_with("ay") && !last.ends_with("oy") {
            format!("{}ies", &last[..last.len() - 1])
        } else {
            format!("{last}s")
        }
    });
    if head.is_empty() {
        last_plural
    } else {
        format!("{head} {last_plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, terms: &[&str], hypernyms: &[&str]) -> ClassEntry {
        ClassEntry {
            name: name.into(),
            terms: terms.iter().map(|s| s.to_string()).collect(),
            hypernyms: hypernyms.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn vocabulary() -> Vocabulary {
        Vocabulary::from_file(VocabularyFile {
            coco: vec![
                entry("person", &["people", "persons"], &[]),
                entry("dog", &["dogs", "puppy"], &["animal", "animals"]),
                entry("wine glass", &["wine glasses", "glass"], &[]),
            ],
            imagenet: vec![entry("German shepherd", &["german shepherd", "german shepherds"], &["dog", "dogs", "animal"]), entry("mask", &["mask"], &[])],
        })
    }

    #[test]
    fn phrases_reach_classes_and_boilerplate_does_not() {
        let v = vocabulary();
        let found = v.mentions("Detect the Dogs and people. The box_2d should be [ymin, xmin, ymax, xmax]; the mask in key \"mask\".");
        assert_eq!(found.iter().map(|m| m.phrase.as_str()).collect::<Vec<_>>(), ["dogs", "people"]);
        assert_eq!(v.coco_classes(&found[0]), BTreeSet::from([1]));
        let shepherd = &v.mentions("Is there a German shepherd?")[0];
        assert_eq!(shepherd.phrase, "german shepherd");
        assert_eq!(v.coco_classes(shepherd), BTreeSet::from([1]));
        assert_eq!(v.mentions("the wine glasses")[0].reach.coco, BTreeSet::from([2]));
    }

    #[test]
    fn plurals() {
        assert_eq!(plural("bus"), "buses");
        assert_eq!(plural("wine glass"), "wine glasses");
        assert_eq!(plural("person"), "people");
        assert_eq!(plural("teddy bear"), "teddy bears");
        assert_eq!(plural("butterfly"), "butterflies");
        assert_eq!(vocabulary().coco_count(0, "person", 3), "3 people");
    }
}
