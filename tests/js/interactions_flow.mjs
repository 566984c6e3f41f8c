// The Interactions API through @google/genai, as the seed's JavaScript snippets use it, against a Glimpse server:
// unary create with an inline image, the same streamed, a second turn through previous_interaction_id, get,
// delete, and an error. Usage: node interactions_flow.mjs BASE_URL INPUT_JSON MAX_OUTPUT_TOKENS
// Prints one JSON object with what the SDK returned; tests/sdk/test_js_sdk.py asserts on it.
import { GoogleGenAI } from "@google/genai";

const [baseUrl, inputJson, maxTokens] = process.argv.slice(2);
const ai = new GoogleGenAI({ apiKey: "test-key", httpOptions: { baseUrl } });
const model = "gemini-3-flash-preview";
const input = JSON.parse(inputJson);
const generation_config = { max_output_tokens: Number(maxTokens) };

const unary = await ai.interactions.create({ model, input, generation_config });

const kinds = [];
let streamed = "";
let streamUsage = null;
for await (const event of await ai.interactions.create({ model, input, generation_config, stream: true })) {
  kinds.push(event.event_type);
  if (event.event_type === "step.delta") streamed += event.delta.text;
  if (event.event_type === "interaction.completed") streamUsage = event.interaction.usage;
}

const second = await ai.interactions.create({
  model,
  input: "And what colour is it?",
  previous_interaction_id: unary.id,
  generation_config: { max_output_tokens: 4 },
});
const stored = await ai.interactions.get(second.id);
await ai.interactions.delete(second.id);

async function failure(call) {
  try {
    await call();
    return null;
  } catch (e) {
    return { status: e.status, code: e.error?.error?.code ?? e.error?.code ?? null };
  }
}

console.log(JSON.stringify({
  unary: { status: unary.status, text: unary.steps.at(-1).content[0].text, inputTokens: unary.usage.total_input_tokens },
  stream: { kinds, text: streamed, inputTokens: streamUsage?.total_input_tokens },
  second: { previous: second.previous_interaction_id, inputTokens: second.usage.total_input_tokens },
  stored: { steps: stored.steps.map((s) => s.type) },
  afterDelete: await failure(() => ai.interactions.get(second.id)),
  badInput: await failure(() => ai.interactions.create({ model, input: [{ type: "audio", data: "AAAA", mime_type: "audio/wav" }] })),
}));
