//! `stopSequences` for every backend: the answer ends before the first stop sequence it contains, and a stream
//! never shows any part of one. Text that could be the start of a stop sequence is held back until the next
//! delta says whether it is. Engines that know the stop sequences stop generating on their own (mistralrs matches
//! them in the decoded bytes, OpenAI-compatible engines take `stop`); this adapter makes the text exact whatever
//! the engine did with the tokens around the match, and for engines that ignore them (the toolkit) it hides the
//! rest of the answer.

use std::collections::VecDeque;

use futures::StreamExt;

use crate::engine::{FinishReason, GenerationEvent, GenerationStream};
use crate::error::GlimpseError;

struct State {
    stream: GenerationStream,
    stops: Vec<String>,
    /// Text received and not yet passed on: it may be the start of a stop sequence.
    pending: String,
    /// A stop sequence was found: later text is dropped, and the answer's finish reason is STOP.
    stopped: bool,
    queue: VecDeque<Result<GenerationEvent, GlimpseError>>,
}

/// `stream` with its text cut before the first of `stops` (empty strings are ignored).
pub fn until_stop_sequence(stream: GenerationStream, stops: &[String]) -> GenerationStream {
    let stops: Vec<String> = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
    if stops.is_empty() {
        return stream;
    }
    let state = State { stream, stops, pending: String::new(), stopped: false, queue: VecDeque::new() };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.queue.pop_front() {
                return Some((event, st));
            }
            match st.stream.next().await? {
                Ok(GenerationEvent::Text(delta)) if !st.stopped => st.receive(delta),
                Ok(GenerationEvent::Text(_)) => {}
                Ok(GenerationEvent::Done { finish, usage }) => {
                    // Held-back text that turned out to be no stop sequence goes out before the end.
                    let rest = std::mem::take(&mut st.pending);
                    if !rest.is_empty() {
                        st.queue.push_back(Ok(GenerationEvent::Text(rest)));
                    }
                    let finish = if st.stopped { FinishReason::Stop } else { finish };
                    st.queue.push_back(Ok(GenerationEvent::Done { finish, usage }));
                }
                Err(e) => st.queue.push_back(Err(e)),
            }
        }
    })
    .boxed()
}

impl State {
    /// Takes a delta: queues what can be shown, keeps what may start a stop sequence.
    fn receive(&mut self, delta: String) {
        self.pending.push_str(&delta);
        let shown = match self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            Some(at) => {
                self.stopped = true;
                self.pending.truncate(at);
                std::mem::take(&mut self.pending)
            }
            None => {
                let keep = self.held_back();
                self.pending.drain(..self.pending.len() - keep).collect()
            }
        };
        if !shown.is_empty() {
            self.queue.push_back(Ok(GenerationEvent::Text(shown)));
        }
    }

    /// Bytes at the end of the pending text that are the beginning of some stop sequence (whole characters).
    fn held_back(&self) -> usize {
        self.stops
            .iter()
            .flat_map(|stop| stop.char_indices().skip(1).map(move |(end, _)| &stop[..end]))
            .filter(|prefix| self.pending.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Usage;

    fn run(deltas: &[&str], stops: &[&str], finish: FinishReason) -> (Vec<String>, FinishReason) {
        let mut events: Vec<Result<GenerationEvent, GlimpseError>> =
            deltas.iter().map(|d| Ok(GenerationEvent::Text(d.to_string()))).collect();
        events.push(Ok(GenerationEvent::Done { finish, usage: Usage::default() }));
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut stream = until_stop_sequence(futures::stream::iter(events).boxed(), &stops);
        let mut texts = Vec::new();
        while let Some(event) = futures::executor::block_on(stream.next()) {
            match event.unwrap() {
                GenerationEvent::Text(t) => texts.push(t),
                GenerationEvent::Done { finish, .. } => return (texts, finish),
            }
        }
        panic!("no Done event")
    }

    #[test]
    fn text_ends_before_the_stop_sequence_and_none_of_it_is_shown() {
        let (texts, finish) = run(&["A", " red", " circ", "le.", " More"], &["circle"], FinishReason::MaxTokens);
        assert_eq!(texts.concat(), "A red ");
        assert!(texts.iter().all(|t| !t.contains('c')), "{texts:?}");
        assert_eq!(finish, FinishReason::Stop);
    }

    #[test]
    fn held_back_text_that_is_no_stop_sequence_is_passed_on() {
        let (texts, finish) = run(&["A cir", "cus", " tent"], &["circle"], FinishReason::Stop);
        assert_eq!(texts.concat(), "A circus tent");
        assert_eq!(texts[0], "A ", "the possible start `cir` waits for the next delta");
        assert_eq!(finish, FinishReason::Stop, "the engine's own reason when no stop sequence was met");
        let (texts, _) = run(&["ends with ci"], &["circle"], FinishReason::MaxTokens);
        assert_eq!(texts.concat(), "ends with ci", "what was held back goes out before the end");
    }

    #[test]
    fn the_earliest_of_several_stops_wins_and_characters_stay_whole() {
        let (texts, _) = run(&["héllo wörld. Next"], &["Next", "ö"], FinishReason::Stop);
        assert_eq!(texts.concat(), "héllo w");
        let (texts, _) = run(&["no stops here"], &[""], FinishReason::Stop);
        assert_eq!(texts.concat(), "no stops here");
    }
}
