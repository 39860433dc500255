// Drives the worker's OpenAI-compatible HTTP API with the official `openai`
// npm client (tests/http/package.json pins it; tools/setup.sh installs it).
// Run by http_e2e_test.cc, which starts the services and passes:
//   OSSGATE_HTTP_URL      https://127.0.0.1:<port>/v1
//   OSSGATE_API_KEY       a key listed in the worker's --http_api_keys file
//   OSSGATE_MODEL         the served model id
//   OSSGATE_METRICS_URL   http://127.0.0.1:<port>/metrics of the worker
//   NODE_EXTRA_CA_CERTS   the CA of the worker's certificate
// The worker runs with --max_sequences=1 --max_waiting=1 --http_max_body_bytes=1048576.
// Every check is an assertion; the last stdout line is "RESULT <json>" with
// the outputs the C++ test compares against the gRPC API.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run this through http_e2e_test)`);
  return v;
};
const baseURL = env('OSSGATE_HTTP_URL');
const apiKey = env('OSSGATE_API_KEY');
const model = env('OSSGATE_MODEL');
const metricsURL = env('OSSGATE_METRICS_URL');

// No automatic retries: a 429 or 5xx must be seen, not hidden.
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
const result = {};
const messages = [
  { role: 'system', content: 'Answer in the style of 1961 American prose.' },
  { role: 'user', content: 'Tell me about the old house by the river.' },
];

async function expectError(promise, status, check) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `expected an APIError, got ${e}`);
    assert.equal(e.status, status, `status of ${e.message}`);
    if (check) check(e);
    return e;
  }
  assert.fail(`expected HTTP ${status}, the request succeeded`);
}

async function metric(name, labels) {
  const text = await (await fetch(metricsURL)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) return Number(line.split(' ').pop());
  }
  return 0;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function step(name, fn) {
  const t0 = Date.now();
  await fn();
  console.log(`ok ${name} (${Date.now() - t0} ms)`);
}

await step('models list with provenance', async () => {
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  const m = list.data[0];
  assert.equal(m.id, model);
  assert.equal(m.object, 'model');
  assert.match(m.sha256, /^[0-9a-f]{64}$/);
  assert.ok(m.source.startsWith('ossgate://'), m.source);
  assert.equal(typeof m.audit_log_index, 'number');
  assert.match(m.verified_at, /^\d{4}-\d\d-\d\dT/);
  result.models = { sha256: m.sha256, source: m.source, audit_log_index: m.audit_log_index };
});

await step('chat, non-streaming, greedy', async () => {
  const r = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 40, user: 'e2e "user"\n' });
  assert.equal(r.object, 'chat.completion');
  assert.ok(r.id.startsWith('chatcmpl-'));
  const c = r.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(c.message.content.length > 0);
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 40);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  result.chat = { content: c.message.content, reasoning_content: c.message.reasoning_content ?? null,
                  finish_reason: c.finish_reason, usage: r.usage };
});

await step('chat, streaming, same greedy answer, usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model, messages, temperature: 0, max_tokens: 40, stream: true, stream_options: { include_usage: true } });
  let content = '', reasoning = '', finish = null, usage = null, first = true, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) { usage = chunk.usage; assert.equal(chunk.choices.length, 0); continue; }
    const d = chunk.choices[0].delta;
    if (first) { assert.equal(d.role, 'assistant'); first = false; }
    if (d.content) content += d.content;
    if (d.reasoning_content) reasoning += d.reasoning_content;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.ok(chunks > 3, `only ${chunks} chunks: not streamed`);
  assert.equal(content, result.chat.content);
  assert.equal(reasoning || null, result.chat.reasoning_content);
  assert.equal(finish, result.chat.finish_reason);
  assert.deepEqual(usage, result.chat.usage);
});

await step('reasoning_content: never inside content; assistant reasoning goes back in', async () => {
  // The bundled model answers on the final channel only (docs/small_model.md):
  // reasoning_content is null in the message and absent from every delta,
  // and no delta mixes channels. (The analysis -> reasoning_content mapping
  // itself is checked with analysis output in openai_api_test.)
  const req = { model, messages, temperature: 1, seed: 7, max_tokens: 24 };
  const r = await client.chat.completions.create(req);
  const m = r.choices[0].message;
  assert.ok('reasoning_content' in m, 'the message has no reasoning_content field');
  assert.equal(m.reasoning_content, null);
  const stream = await client.chat.completions.create({ ...req, stream: true });
  let content = '', reasoning = '';
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta ?? {};
    assert.ok(!(d.content && d.reasoning_content), 'one delta carries both channels');
    content += d.content ?? '';
    reasoning += d.reasoning_content ?? '';
  }
  assert.equal(reasoning, '');
  assert.equal(content, m.content);
  result.seeded = { content: m.content };
  // An assistant turn in progress with reasoning_content is rendered as its
  // analysis message (the C++ side compares the prompt size).
  const inProgress = await client.chat.completions.create({
    model, max_tokens: 4, temperature: 0,
    messages: [messages[1], { role: 'assistant', content: null, reasoning_content: 'The user asks about a house.' }] });
  result.in_progress_prompt_tokens = inProgress.usage.prompt_tokens;
});

await step('tools: the prompt the gRPC face renders; a call and its result go back in', async () => {
  // "unit" before "city": harmony keeps the client's property order (the
  // C++ side renders the same conversation and compares the prompt size).
  const tools = [{
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather in a city.',
      parameters: {
        type: 'object',
        properties: { unit: { type: 'string', enum: ['celsius', 'fahrenheit'] }, city: { type: 'string', description: 'City name' } },
        required: ['city'],
      },
    },
  }];
  const r = await client.chat.completions.create({
    model, temperature: 0, max_tokens: 16, tools,
    messages: [
      { role: 'user', content: 'Weather in Oslo?' },
      { role: 'assistant', content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 20}' },
    ],
  });
  const m = r.choices[0].message;
  result.tools = { prompt_tokens: r.usage.prompt_tokens, content: m.content ?? '', finish: r.choices[0].finish_reason,
                   calls: m.tool_calls ?? [] };
  await expectError(client.chat.completions.create({ model, tools, tool_choice: 'required', messages: [messages[1]] }),
                    400, (e) => assert.equal(e.param, 'tool_choice'));
  await expectError(client.chat.completions.create({ model, messages: [messages[1], { role: 'tool', tool_call_id: 'nope', content: 'x' }] }),
                    400, (e) => assert.equal(e.param, 'messages[1].tool_call_id'));
});

await step('completions, greedy, then stop strings', async () => {
  const r = await client.completions.create({ model, prompt: 'The old man walked', temperature: 0, max_tokens: 24 });
  assert.equal(r.object, 'text_completion');
  const text = r.choices[0].text;
  assert.ok(text.length > 8, JSON.stringify(text));
  result.completion = { text, usage: r.usage };
  const stop = text.slice(4, 7);
  const cut = await client.completions.create({ model, prompt: 'The old man walked', temperature: 0, max_tokens: 24, stop: [stop] });
  assert.equal(cut.choices[0].text, text.slice(0, text.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, 'stop');
  const s = await client.completions.create({ model, prompt: 'The old man walked', temperature: 0, max_tokens: 24, stream: true });
  let streamed = '';
  for await (const chunk of s) streamed += chunk.choices[0]?.text ?? '';
  assert.equal(streamed, text);
});

await step('seeds reproduce the same text; another seed differs', async () => {
  const req = { model, messages, temperature: 1, max_tokens: 24 };
  const a = await client.chat.completions.create({ ...req, seed: 42 });
  const b = await client.chat.completions.create({ ...req, seed: 42 });
  const c = await client.chat.completions.create({ ...req, seed: 43 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.notEqual(a.choices[0].message.content + a.choices[0].message.reasoning_content,
                  c.choices[0].message.content + c.choices[0].message.reasoning_content);
});

await step('logprobs', async () => {
  const r = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 2 });
  const lp = r.choices[0].logprobs.content;
  assert.ok(lp.length > 0);
  assert.equal(lp.map((t) => t.token).join(''), r.choices[0].message.content);
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
    assert.equal(t.top_logprobs[0].token, t.token);  // greedy: the chosen token is the most likely
  }
});

await step('errors: wrong key 401, bad parameter 400, n>1 400, unknown model 404, too large 413', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
  await expectError(bad.models.list(), 401, (e) => assert.equal(e.type, 'authentication_error'));
  await expectError(bad.chat.completions.create({ model, messages }), 401);
  await expectError(client.chat.completions.create({ model, messages, temperature: 5 }), 400,
                    (e) => { assert.equal(e.param, 'temperature'); assert.equal(e.type, 'invalid_request_error'); });
  await expectError(client.chat.completions.create({ model, messages, n: 2 }), 400, (e) => assert.equal(e.param, 'n'));
  await expectError(client.chat.completions.create({ model, messages, max_tokens: 'many' }), 400,
                    (e) => assert.equal(e.param, 'max_tokens'));
  await expectError(client.chat.completions.create({ model: 'gpt-4o', messages }), 404,
                    (e) => { assert.equal(e.param, 'model'); assert.equal(e.code, 'model_not_found'); });
  const big = 'x'.repeat(2 * 1024 * 1024);
  await expectError(client.chat.completions.create({ model, messages: [{ role: 'user', content: big }] }), 413,
                    (e) => assert.equal(e.code, 'request_too_large'));
  // The worker keeps serving.
  const ok = await client.chat.completions.create({ model, messages, max_tokens: 2 });
  assert.equal(ok.choices.length, 1);
});

await step('full: 429; a client that disconnects mid-stream frees its slot', async () => {
  const cancelledBefore = await metric('ossgate_worker_requests_total', { finish_reason: 'cancelled' });
  const long = { model, prompt: 'A story that never ends:', max_tokens: 3000, temperature: 1, seed: 5, ignore_eos: true, stream: true };
  const ca = new AbortController(), cb = new AbortController();
  const a = await client.completions.create(long, { signal: ca.signal });  // runs (one slot)
  const itA = a[Symbol.asyncIterator]();
  for (let i = 0; i < 3; i++) assert.equal((await itA.next()).done, false);
  const b = await client.completions.create(long, { signal: cb.signal });  // waits (one queue place)
  await expectError(client.completions.create({ ...long, stream: false }), 429,
                    (e) => assert.equal(e.type, 'rate_limit_error'));
  const t0 = Date.now();
  ca.abort();  // A goes away: B gets the slot
  const itB = b[Symbol.asyncIterator]();
  for (let i = 0; i < 3; i++) assert.equal((await itB.next()).done, false);
  cb.abort();
  // Both were cancelled (not finished: 3000 tokens take far longer), and a
  // new request runs at once.
  let cancelled = 0;
  for (let i = 0; i < 100 && cancelled < cancelledBefore + 2; i++) {
    cancelled = await metric('ossgate_worker_requests_total', { finish_reason: 'cancelled' });
    if (cancelled < cancelledBefore + 2) await sleep(20);
  }
  assert.equal(cancelled, cancelledBefore + 2, 'the disconnected streams were not cancelled');
  const r = await client.completions.create({ model, prompt: 'Hello', max_tokens: 4 });
  assert.equal(r.choices.length, 1);
  result.disconnect_ms = Date.now() - t0;
  // A client that gives up on a non-streaming answer cancels it too.
  const cc = new AbortController();
  const c = client.completions.create({ ...long, stream: false }, { signal: cc.signal });
  c.catch(() => {});
  // Submitted within milliseconds; its 3000 tokens take far longer than this.
  await sleep(500);
  cc.abort();
  await assert.rejects(c);
  for (let i = 0; i < 100 && cancelled < cancelledBefore + 3; i++) {
    cancelled = await metric('ossgate_worker_requests_total', { finish_reason: 'cancelled' });
    if (cancelled < cancelledBefore + 3) await sleep(20);
  }
  assert.equal(cancelled, cancelledBefore + 3, 'the abandoned non-streaming request was not cancelled');
});

console.log('RESULT ' + JSON.stringify(result));
