// The official OpenAI Node SDK (npm `openai`), as Node voice servers use it: streamed chat with usage, multi-turn,
// a streamed tool call accumulated by index and answered with a tool message, two tool calls in one answer, the
// SDK's own tool loop (runTools), a barge-in (AbortController after the first text) and a non-streamed answer.
// One JSON line per scenario, like the Python drivers (tests/clients/drivers/common.py); the test judges them.
// The SDK lives in its own cached npm folder (tests/clients/envs.py), named by CLIENT_NODE_MODULES.
import { createRequire } from "node:module";

const env = process.env;
const OpenAI = createRequire(`${env.CLIENT_NODE_MODULES}/`)("openai");
const MODEL = env.CLIENT_MODEL || "auto";
const HEADERS = { "X-Call-Id": env.CLIENT_CALL_ID, "X-Tenant": env.CLIENT_TENANT };
const client = new OpenAI({
  baseURL: env.CLIENT_BASE_URL.replace(/\/+$/, ""),
  apiKey: env.CLIENT_API_KEY || "sk-client-tests",
  maxRetries: 0,
  timeout: 1000 * Number(env.CLIENT_TIMEOUT || "30"),
  defaultHeaders: HEADERS,
});

const SYSTEM = "You are a concise voice assistant for Acme Dental. Answer in one short sentence.";
const TOOL_RESULT = { location: "Paris", temperature_c: 21, condition: "sunny" };
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather for a city.",
    parameters: {
      type: "object",
      properties: { location: { type: "string", description: "City name, e.g. Paris" } },
      required: ["location"],
    },
  },
};
const clock = {
  type: "function",
  function: {
    name: "get_local_time",
    description: "Get the local time in a city.",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const report = (scenario, observed = {}) => console.log(JSON.stringify({ scenario, ...observed }));

async function scenario(name, play) {
  try {
    await play();
  } catch (error) {
    report(name, { error: `${error?.constructor?.name}: ${error?.message || error}` });
  }
}

// One streamed turn; tool-call fragments accumulated by index, as SDK users do.
async function streamTurn(messages, extra = {}) {
  const stream = await client.chat.completions.create({
    model: MODEL, messages, stream: true, stream_options: { include_usage: true }, ...extra,
  });
  let text = "", chunks = 0, usage = null, finish = null;
  const calls = [];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices?.[0];
    if (!choice) continue;
    finish = choice.finish_reason || finish;
    if (choice.delta?.content) { text += choice.delta.content; chunks++; }
    for (const fragment of choice.delta?.tool_calls || []) {
      const call = (calls[fragment.index] ||= { id: "", type: "function", function: { name: "", arguments: "" } });
      if (fragment.id) call.id = fragment.id;
      if (fragment.function?.name) call.function.name += fragment.function.name;
      if (fragment.function?.arguments) call.function.arguments += fragment.function.arguments;
    }
  }
  return { text, chunks, usage, finish, calls: calls.filter(Boolean) };
}

const history = [{ role: "system", content: SYSTEM },
  { role: "user", content: "Hi there! The codeword is PAPAYA-42. Please reply with a short greeting." }];

await scenario("stream", async () => {
  const r = await streamTurn(history);
  history.push({ role: "assistant", content: r.text });
  report("stream", { text: r.text, chunks: r.chunks, finish: r.finish, total_tokens: r.usage?.total_tokens ?? null });
});

await scenario("multi_turn", async () => {
  history.push({ role: "user", content: "What is the codeword I told you earlier? Answer with just the codeword." });
  const r = await streamTurn(history);
  history.push({ role: "assistant", content: r.text });
  report("multi_turn", { text: r.text, messages_sent: history.length - 1 });
});

await scenario("tool_call", async () => {
  history.push({ role: "user", content: "What's the weather in Paris right now?" });
  let r = await streamTurn(history, { tools: [weather] });
  const call = r.calls[0];
  report("tool_call", { name: call?.function.name ?? null, arguments: call ? JSON.parse(call.function.arguments) : null,
    id: call?.id ?? null, finish: r.finish });
  history.push({ role: "assistant", content: null, tool_calls: r.calls });
  for (const c of r.calls) history.push({ role: "tool", tool_call_id: c.id, content: JSON.stringify(TOOL_RESULT) });
  r = await streamTurn(history, { tools: [weather] });
  report("tool_followup", { text: r.text, tool_calls: r.calls.length });
});

await scenario("barge_in", async () => {
  const abort = new AbortController();
  let first = "", aborted = false;
  try {
    const stream = await client.chat.completions.create({
      model: MODEL, stream: true, stream_options: { include_usage: true },
      messages: [{ role: "system", content: SYSTEM },
        { role: "user", content: "Tell me about your opening hours in detail, please." }],
    }, { signal: abort.signal });
    for await (const chunk of stream) {
      if (chunk.choices?.[0]?.delta?.content) {
        first = chunk.choices[0].delta.content;
        abort.abort(); // the caller spoke: drop the rest of the answer
        break;
      }
    }
  } catch (error) {
    if (!(error instanceof OpenAI.APIUserAbortError || error?.name === "AbortError")) throw error;
    aborted = true;
  }
  const r = await streamTurn([{ role: "system", content: SYSTEM },
    { role: "user", content: "Sorry, never mind. Just say goodbye." }]);
  report("barge_in", { first_text: first, aborted, next_text: r.text });
});

await scenario("parallel_tool_calls", async () => {
  const r = await streamTurn([{ role: "user", content: "What's the weather in Paris, and the local time in that city?" }],
    { tools: [weather, clock], parallel_tool_calls: true });
  report("parallel_tool_calls", { names: r.calls.map((c) => c.function.name), ids: r.calls.map((c) => c.id),
    arguments: r.calls.map((c) => JSON.parse(c.function.arguments)), finish: r.finish });
});

await scenario("run_tools", async () => {
  const runner = client.chat.completions.runTools({
    model: MODEL, stream: true,
    messages: [{ role: "system", content: SYSTEM }, { role: "user", content: "What's the weather in Paris right now?" }],
    tools: [{ type: "function", function: { ...weather.function, parse: JSON.parse, function: async () => TOOL_RESULT } }],
  });
  const text = await runner.finalContent();
  report("run_tools", { text, completions: runner.allChatCompletions().length });
});

await scenario("non_stream", async () => {
  const answer = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Say hello." }] });
  report("non_stream", { text: answer.choices[0].message.content, total_tokens: answer.usage?.total_tokens ?? null });
});

report("done");
