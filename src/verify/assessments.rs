//! The assessments check: every control result names the records it judged
//! (`assessment.inputs`, by key and SHA-256), and each must be in the store
//! with exactly those bytes. A result whose evidence was deleted or
//! replaced proves nothing, so it is a problem, not a warning.

use super::load::Loaded;
use super::{Findings, Options};
use crate::evidence::layout;

/// Reports every judged record that is missing or differs.
pub(super) fn check(view: &Loaded, opts: &Options, found: &mut Findings) {
    let index = view.record_index();
    for loaded in view.records() {
        let Some(assessment) = &loaded.record.predicate().assessment else {
            continue;
        };
        for input in &assessment.inputs {
            // A bundle holds the records of its own streams only.
            if let Some(scope) = &opts.bundle {
                let stream = layout::stream_record(&input.record).map(|(s, _)| s);
                if !stream.is_some_and(|s| scope.streams.contains(&s)) {
                    continue;
                }
            }
            match index.get(input.record.as_str()) {
                None => found.problem(
                    &loaded.key,
                    "assessment_input_missing",
                    format!(
                        "the result of control `{}` judged {}, which is not among the readable records of the store",
                        assessment.control, input.record
                    ),
                ),
                Some(judged) if judged.record.sha256 != input.sha256 => found.problem(
                    &loaded.key,
                    "assessment_input_changed",
                    format!(
                        "the result of control `{}` judged {} with SHA-256 {}, but the store holds {}",
                        assessment.control, input.record, input.sha256, judged.record.sha256
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}
