//! The inference engine: worker threads that each own a llama.cpp context
//! and take generation jobs from one queue, off the async runtime.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use futures::channel::{mpsc as async_mpsc, oneshot};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use pae_core::ProviderError;

use crate::disk_cache::{DiskCache, MIN_NEW_TOKENS};
use crate::grammar::Grammar;
use crate::rendered::{self, Prompt};
use crate::text::{StopScanner, Utf8Decoder, is_complete_json_value};

/// The process-wide llama.cpp backend (it may be initialised only once).
pub(crate) fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        // Without a subscriber, llama.cpp's chatter goes nowhere instead of
        // onto the user's terminal.
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
        // Someone else in the process may have initialised it already; the
        // proof token is then still valid.
        LlamaBackend::init().unwrap_or(LlamaBackend {})
    })
}

/// llama.cpp mutates the model while making a context, so contexts are
/// made one at a time.
static CONTEXT_CREATION: Mutex<()> = Mutex::new(());

/// When the reply is a JSON value that ends generation once complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonEnd {
    /// The reply is free text.
    Never,
    /// The reply is always JSON (response format or a required tool call).
    Always,
    /// The reply is JSON if it starts with `{` (a tool call or text).
    IfObject,
}

/// Sampling settings resolved for one job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SamplingPlan {
    /// 0 or less is greedy.
    pub(crate) temperature: f32,
    pub(crate) top_p: Option<f32>,
    /// `None`: until the context is full.
    pub(crate) max_tokens: Option<u32>,
    pub(crate) seed: u32,
}

/// What a finished job produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generation {
    /// The text, cut before any stop sequence.
    pub(crate) text: String,
    /// Text not yet sent as stream deltas (all of it for whole replies).
    pub(crate) unsent: String,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    /// Prompt tokens actually read (the rest came from the prompt cache).
    pub(crate) prompt_tokens_evaluated: u64,
    pub(crate) finish: Finish,
    pub(crate) prompt_time: Duration,
    pub(crate) generation_time: Duration,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// End of generation, a stop sequence, or a complete JSON value.
    Stop,
    /// The token limit or the context size.
    Length,
}

/// Something a streaming job reports.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    /// New text.
    Delta(String),
    /// The end, always last.
    Done(Result<Generation, ProviderError>),
}

/// Where a job's result goes.
#[derive(Debug)]
pub(crate) enum Sink {
    Whole(oneshot::Sender<Result<Generation, ProviderError>>),
    Stream(async_mpsc::UnboundedSender<StreamEvent>),
}

impl Sink {
    fn is_closed(&self) -> bool {
        match self {
            Self::Whole(tx) => tx.is_canceled(),
            Self::Stream(tx) => tx.is_closed(),
        }
    }

    fn delta(&self, text: String) {
        if let (Self::Stream(tx), false) = (self, text.is_empty()) {
            // A closed receiver is noticed by `is_closed` on the next token.
            let _ = tx.unbounded_send(StreamEvent::Delta(text));
        }
    }

    fn finish(self, result: Result<Generation, ProviderError>) {
        match self {
            Self::Whole(tx) => {
                let _ = tx.send(result);
            }
            Self::Stream(tx) => {
                let _ = tx.unbounded_send(StreamEvent::Done(result));
            }
        }
    }
}

/// One generation request for a worker.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) prompt: Prompt,
    pub(crate) stop: Vec<String>,
    pub(crate) grammar: Option<Grammar>,
    pub(crate) sampling: SamplingPlan,
    pub(crate) json_end: JsonEnd,
    /// Hold back streamed text while it may turn out to be a tool call.
    pub(crate) hold_back_objects: bool,
    pub(crate) sink: Sink,
}

/// Context settings shared by the workers.
#[derive(Debug, Clone)]
pub(crate) struct ContextSettings {
    pub(crate) n_ctx: u32,
    pub(crate) n_batch: u32,
    pub(crate) threads: i32,
    pub(crate) prompt_cache: bool,
    pub(crate) flash_attention: Option<bool>,
    /// Prompts read before, on disk (with the prompt cache on).
    pub(crate) disk_cache: Option<DiskCache>,
}

/// The queue and its workers. Dropping it closes the queue; workers finish
/// their current job and exit.
#[derive(Debug)]
pub(crate) struct Engine {
    jobs: mpsc::Sender<Job>,
}

impl Engine {
    /// Starts `workers` threads, each with its own context.
    ///
    /// # Errors
    /// [`ProviderError::Backend`] if a context cannot be made (for example
    /// not enough memory for the context size).
    pub(crate) fn start(
        model: &Arc<LlamaModel>,
        settings: ContextSettings,
        workers: usize,
    ) -> Result<Self, ProviderError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..workers {
            let (ready_tx, ready_rx) = mpsc::channel::<Result<(), ProviderError>>();
            let model = Arc::clone(model);
            let queue = Arc::clone(&queue);
            let settings = settings.clone();
            thread::Builder::new()
                .name(format!("pae-llamacpp-{index}"))
                .spawn(move || worker(&model, settings, &queue, &ready_tx))
                .map_err(|err| backend_error(format!("cannot start a worker thread: {err}")))?;
            ready_rx.recv().map_err(|_| {
                backend_error("a worker thread ended before its context was ready")
            })??;
        }
        Ok(Self { jobs })
    }

    /// Queues a job.
    ///
    /// # Errors
    /// [`ProviderError::Backend`] if every worker has stopped.
    pub(crate) fn submit(&self, job: Job) -> Result<(), ProviderError> {
        self.jobs
            .send(job)
            .map_err(|_| backend_error("the llama.cpp workers have stopped"))
    }
}

pub(crate) fn backend_error(message: impl Into<String>) -> ProviderError {
    ProviderError::Backend {
        message: message.into(),
    }
}

fn worker(
    model: &LlamaModel,
    settings: ContextSettings,
    queue: &Mutex<mpsc::Receiver<Job>>,
    ready: &mpsc::Sender<Result<(), ProviderError>>,
) {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(settings.n_ctx))
        .with_n_batch(settings.n_batch)
        .with_n_ubatch(settings.n_batch)
        .with_n_threads(settings.threads)
        .with_n_threads_batch(settings.threads)
        // llama.cpp's flash-attention policy: -1 auto, 0 off, 1 on.
        .with_flash_attention_policy(match settings.flash_attention {
            None => -1,
            Some(false) => 0,
            Some(true) => 1,
        });
    let context = {
        let _guard = CONTEXT_CREATION
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        model.new_context(backend(), params)
    };
    let context = match context {
        Ok(context) => {
            let _ = ready.send(Ok(()));
            context
        }
        Err(err) => {
            let _ = ready.send(Err(backend_error(format!(
                "cannot create a llama.cpp context of {} tokens: {err}",
                settings.n_ctx
            ))));
            return;
        }
    };
    let batch = LlamaBatch::new(settings.n_batch as usize, 1);
    let mut state = WorkerState {
        model,
        context,
        settings,
        cached: Vec::new(),
        batch,
    };
    loop {
        // Holding the lock while waiting is what makes this a shared queue;
        // it is released before the job runs.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else {
            return;
        };
        state.run(job);
    }
}

struct WorkerState<'m> {
    model: &'m LlamaModel,
    context: LlamaContext<'m>,
    settings: ContextSettings,
    /// The tokens whose keys and values are in the context's cache.
    cached: Vec<LlamaToken>,
    batch: LlamaBatch<'static>,
}

impl WorkerState<'_> {
    fn run(&mut self, job: Job) {
        if job.sink.is_closed() {
            return;
        }
        let Job {
            prompt,
            stop,
            grammar,
            sampling,
            json_end,
            hold_back_objects,
            sink,
        } = job;
        let result = self.generate(
            &prompt,
            &stop,
            grammar.as_ref(),
            sampling,
            json_end,
            hold_back_objects,
            &sink,
        );
        if result.is_err() {
            // The cache may hold half a batch; start clean next time.
            self.context.clear_kv_cache();
            self.cached.clear();
        }
        sink.finish(result);
    }

    #[allow(clippy::too_many_arguments)]
    fn generate(
        &mut self,
        prompt: &Prompt,
        stop: &[String],
        grammar: Option<&Grammar>,
        sampling: SamplingPlan,
        json_end: JsonEnd,
        hold_back_objects: bool,
        sink: &Sink,
    ) -> Result<Generation, ProviderError> {
        let started = Instant::now();
        let vocab = self.model.vocab();
        // Special tokens only where the template wrote them: text in the
        // messages cannot open or close a turn.
        let tokens = rendered::tokenize(self.model, prompt);
        let n_ctx = self.context.n_ctx() as usize;
        if tokens.is_empty() {
            return Err(ProviderError::invalid_request("the prompt is empty"));
        }
        if tokens.len() >= n_ctx {
            return Err(ProviderError::invalid_request(format!(
                "the prompt has {} tokens but the context holds {n_ctx}; shorten the \
                 conversation or raise the context size",
                tokens.len()
            )));
        }

        let mut grammar_sampler =
            match grammar {
                Some(g) => Some(LlamaSampler::grammar(self.model, &g.text, g.root).map_err(
                    |err| backend_error(format!("llama.cpp rejected the grammar: {err}")),
                )?),
                None => None,
            };
        let mut chain = sampler_chain(sampling);

        let evaluated = self.read_prompt(&tokens)?;
        let prompt_time = started.elapsed();
        let generation_started = Instant::now();

        let room = n_ctx - tokens.len();
        let limit = sampling.max_tokens.map_or(room, |m| (m as usize).min(room));
        let mut decoder = Utf8Decoder::default();
        let mut scanner = StopScanner::new(stop);
        let mut generated = 0usize;
        let mut finish = Finish::Length;
        // Whether the reply so far may still be streamed (not a held-back
        // JSON object).
        let mut streaming = matches!(sink, Sink::Stream(_));
        let mut decided = !hold_back_objects;
        let mut logits_index = self.batch.n_tokens() - 1;

        while generated < limit {
            if sink.is_closed() {
                // Nobody is listening any more; the result is discarded.
                finish = Finish::Stop;
                break;
            }
            let token = sample(
                &self.context,
                logits_index,
                &mut chain,
                grammar_sampler.as_mut(),
            )?;
            if vocab.is_eog(token) {
                finish = Finish::Stop;
                break;
            }
            if let Some(g) = grammar_sampler.as_mut() {
                g.try_accept(token).map_err(|err| {
                    backend_error(format!("the grammar could not accept a token: {err}"))
                })?;
            }
            generated += 1;
            let piece = vocab.token_to_piece(token, false, None);
            let text = decoder.push(&piece);
            if scanner.push(&text) {
                finish = Finish::Stop;
                break;
            }
            if !decided {
                let start = scanner.text().trim_start();
                if let Some(first) = start.chars().next() {
                    decided = true;
                    if first == '{' {
                        streaming = false;
                    }
                }
            }
            if streaming && decided {
                sink.delta(scanner.take_safe(false));
            }
            let json_done = match json_end {
                JsonEnd::Never => false,
                JsonEnd::Always => is_complete_json_value(scanner.text()),
                JsonEnd::IfObject => {
                    scanner.text().trim_start().starts_with('{')
                        && is_complete_json_value(scanner.text())
                }
            };
            if json_done {
                finish = Finish::Stop;
                break;
            }
            if generated >= limit {
                break;
            }
            let position = (tokens.len() + generated - 1) as i32;
            self.batch.clear();
            self.batch
                .add(token, position, &[0], true)
                .map_err(|err| backend_error(format!("cannot queue a token: {err}")))?;
            self.context
                .decode(&mut self.batch)
                .map_err(|err| backend_error(format!("llama.cpp decode failed: {err}")))?;
            self.cached.push(token);
            logits_index = 0;
        }
        if !scanner.stopped() {
            let rest = decoder.finish();
            scanner.push(&rest);
        }
        let unsent = if streaming && decided {
            let last = scanner.take_safe(true);
            sink.delta(last);
            String::new()
        } else {
            scanner.take_safe(true)
        };
        Ok(Generation {
            text: scanner.text().to_owned(),
            unsent,
            prompt_tokens: tokens.len() as u64,
            completion_tokens: generated as u64,
            prompt_tokens_evaluated: evaluated as u64,
            finish,
            prompt_time,
            generation_time: generation_started.elapsed(),
        })
    }

    /// Puts the prompt's keys and values into the cache, reusing the cached
    /// prefix, and leaves the batch holding the last prompt token (whose
    /// logits start generation). Returns the number of tokens read.
    fn read_prompt(&mut self, tokens: &[LlamaToken]) -> Result<usize, ProviderError> {
        if self.cached.is_empty() {
            self.load_from_disk(tokens);
        }
        let mut keep = if self.settings.prompt_cache {
            self.cached
                .iter()
                .zip(tokens)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            0
        };
        // The last prompt token is always read again: its logits are needed.
        keep = keep.min(tokens.len() - 1);
        let removed = u32::try_from(keep)
            .ok()
            .and_then(|p0| {
                self.context
                    .clear_kv_cache_seq(Some(0), Some(p0), None)
                    .ok()
            })
            .unwrap_or(false);
        if !removed {
            // Some memory types cannot drop a tail; start from nothing.
            self.context.clear_kv_cache();
            keep = 0;
        }
        self.cached.truncate(keep);

        let n_batch = self.settings.n_batch.max(1) as usize;
        let rest = &tokens[keep..];
        for (chunk_index, chunk) in rest.chunks(n_batch).enumerate() {
            self.batch.clear();
            let last_chunk = (chunk_index + 1) * n_batch >= rest.len();
            for (i, token) in chunk.iter().enumerate() {
                let position = (keep + chunk_index * n_batch + i) as i32;
                let wants_logits = last_chunk && i + 1 == chunk.len();
                self.batch
                    .add(*token, position, &[0], wants_logits)
                    .map_err(|err| backend_error(format!("cannot queue a prompt token: {err}")))?;
            }
            self.context.decode(&mut self.batch).map_err(|err| {
                backend_error(format!("llama.cpp could not read the prompt: {err}"))
            })?;
            self.cached.extend_from_slice(chunk);
        }
        if let Some(disk) = &self.settings.disk_cache
            && rest.len() >= MIN_NEW_TOKENS
        {
            disk.save(&self.context, &self.cached);
        }
        Ok(rest.len())
    }

    /// Fills the empty cache from the disk entry that shares the longest
    /// prefix with `tokens`, if there is one; on failure the cache stays
    /// empty.
    fn load_from_disk(&mut self, tokens: &[LlamaToken]) {
        let Some(disk) = &self.settings.disk_cache else {
            return;
        };
        let Some((path, _)) = disk.best_match(tokens) else {
            return;
        };
        let n_ctx = self.context.n_ctx() as usize;
        match disk.load(&mut self.context, &path, n_ctx) {
            Some(loaded) => self.cached = loaded,
            None => {
                self.context.clear_kv_cache();
                self.cached.clear();
            }
        }
    }
}

/// The sampler that picks a token once the grammar (if any) has had its say.
fn sampler_chain(sampling: SamplingPlan) -> LlamaSampler {
    if sampling.temperature <= 0.0 || !sampling.temperature.is_finite() {
        return LlamaSampler::greedy();
    }
    let mut samplers = Vec::with_capacity(3);
    if let Some(p) = sampling.top_p.filter(|p| *p > 0.0 && *p < 1.0) {
        samplers.push(LlamaSampler::top_p(p, 1));
    }
    samplers.push(LlamaSampler::temp(sampling.temperature));
    samplers.push(LlamaSampler::dist(sampling.seed));
    LlamaSampler::chain(samplers, true)
}

/// Samples the next token. With a grammar, the unconstrained choice is
/// tried first and kept if the grammar allows it (as llama.cpp's own
/// sampler does); only otherwise is the grammar applied to the whole
/// vocabulary, which is slow.
fn sample(
    context: &LlamaContext<'_>,
    index: i32,
    chain: &mut LlamaSampler,
    grammar: Option<&mut LlamaSampler>,
) -> Result<LlamaToken, ProviderError> {
    let no_token = || backend_error("the sampler chose no token");
    let mut candidates = context.token_data_array_ith(index);
    candidates.apply_sampler(chain);
    let token = candidates.selected_token().ok_or_else(no_token)?;
    let Some(grammar) = grammar else {
        return Ok(token);
    };
    let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
    single.apply_sampler(grammar);
    if single.data.first().is_some_and(|d| d.logit().is_finite()) {
        return Ok(token);
    }
    let mut candidates = context.token_data_array_ith(index);
    candidates.apply_sampler(grammar);
    if !candidates.data.iter().any(|d| d.logit().is_finite()) {
        return Err(backend_error(
            "the grammar allows no next token (the schema may be unsatisfiable)",
        ));
    }
    candidates.apply_sampler(chain);
    candidates.selected_token().ok_or_else(no_token)
}
