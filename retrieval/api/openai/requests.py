"""Which OpenAI request fields mmrag uses, passes to the LLM, or refuses: none is ignored silently.

* used: ``model``, ``messages``/``prompt``, ``stream``, ``stream_options``, ``temperature``,
  ``max_tokens``/``max_completion_tokens``, ``stop``, ``n`` (1 only), ``echo`` (completions),
  and mmrag's ``k`` and ``filter``;
* passed to the LLM as given (``LLM_FIELDS``): sampling and tool fields; the extractive
  answerer refuses those that ask for another kind of answer (``response_format``, ``tools``,
  ``tool_choice``, ``functions``) and has no use for the others (it samples nothing);
* refused with a 400 naming the field (``REFUSED``): what would change the answer's contract
  and cannot be kept (several choices, log probabilities, audio, web search, streamed tool
  calls, suffixes, token-array prompts), and any field OpenAI does not define.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retrieval.api.openai.errors import OpenAIError
from retrieval.api.openai.schemas import ChatCompletionRequest, CompletionRequest, GenerationFields

LLM_FIELDS = frozenset({
    "response_format", "tools", "tool_choice", "parallel_tool_calls", "functions",
    "function_call", "top_p", "presence_penalty", "frequency_penalty", "seed", "logit_bias",
    "user", "reasoning_effort", "verbosity", "prediction", "metadata", "store", "service_tier",
    "prompt_cache_key", "safety_identifier",
})
COMPLETION_LLM_FIELDS = frozenset({
    "top_p", "presence_penalty", "frequency_penalty", "seed", "logit_bias", "user",
})
REFUSED = frozenset({
    "logprobs", "top_logprobs", "modalities", "audio", "web_search_options", "suffix", "best_of",
})


def _refuse(param: str, message: str) -> OpenAIError:
    return OpenAIError(400, message, code="unsupported_parameter", param=param)


def _common(body: GenerationFields) -> None:
    """Refusals both endpoints share."""
    if body.n not in (None, 1):
        raise _refuse("n", f"n={body.n} is not supported: this server writes one grounded "
                      "answer per request. Send n=1 or leave n out.")


def _extra(body: GenerationFields) -> dict[str, Any]:
    """The fields the request carries beyond the schema's, unset ones left out."""
    return {k: v for k, v in (body.model_extra or {}).items() if v is not None}


def _unknown(name: str) -> OpenAIError:
    return OpenAIError(
        400, f"Unrecognized request argument supplied: {name}. Leave it out; mmrag's own "
        "fields are k and filter.", code="unknown_parameter", param=name,
    )


def chat_llm_fields(body: ChatCompletionRequest) -> Mapping[str, Any]:
    """The chat request's fields for the LLM; OpenAIError 400 for one that cannot be kept."""
    _common(body)
    extra = _extra(body)
    if extra.get("logprobs") or extra.get("top_logprobs"):
        raise _refuse("logprobs", "logprobs are not supported: the answer is written from the "
                      "retrieved items and its tokens carry no log probabilities. Leave "
                      "logprobs out.")
    modalities = extra.get("modalities")
    if extra.get("audio") is not None or (modalities and list(modalities) != ["text"]):
        raise _refuse("modalities", "Only text answers are supported; leave audio and "
                      "modalities out.")
    if "web_search_options" in extra:
        raise _refuse("web_search_options", "mmrag answers from the collection, not the web; "
                      "leave web_search_options out.")
    if body.stream and (extra.get("tools") or extra.get("functions")):
        raise _refuse("stream", "Tool calls are not streamed by this server; send requests "
                      "with tools with stream=false.")
    for name in extra:
        if name not in LLM_FIELDS and name not in ("logprobs", "top_logprobs", "modalities"):
            raise _unknown(name)
    return {k: v for k, v in extra.items() if k in LLM_FIELDS}


def completion_llm_fields(body: CompletionRequest) -> Mapping[str, Any]:
    """The completions request's fields for the LLM; OpenAIError 400 for one not kept."""
    _common(body)
    extra = _extra(body)
    if extra.get("logprobs") is not None:
        raise _refuse("logprobs", "logprobs are not supported: the answer is written from the "
                      "retrieved items and its tokens carry no log probabilities. Leave "
                      "logprobs out.")
    if extra.get("suffix"):
        raise _refuse("suffix", "suffix (text insertion) is not supported: the answer is "
                      "written from the retrieved items. Leave suffix out.")
    if extra.get("best_of") not in (None, 1):
        raise _refuse("best_of", "best_of is not supported: this server writes one grounded "
                      "answer per request. Leave best_of out.")
    for name in extra:
        if name not in COMPLETION_LLM_FIELDS and name not in REFUSED:
            raise _unknown(name)
    return {k: v for k, v in extra.items() if k in COMPLETION_LLM_FIELDS}


def prompt_text(body: CompletionRequest) -> str:
    """The one text prompt of a completions request; OpenAIError 400 for anything else."""
    prompt = body.prompt
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if prompt and all(isinstance(p, str) for p in prompt):
        raise _refuse("prompt", f"{len(prompt)} prompts were sent; this server answers one "
                      "prompt per request. Send them one at a time.")
    raise _refuse("prompt", "Token-array prompts are not supported; send the prompt as text.")
