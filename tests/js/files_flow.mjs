// The File API through @google/genai, as the seed's JavaScript snippets use it, against a Glimpse server.
// Usage: node files_flow.mjs BASE_URL IMAGE_PATH PROMPT MAX_OUTPUT_TOKENS
// Prints one JSON object with what the SDK returned; tests/sdk/test_js_sdk.py asserts on it.
import { GoogleGenAI, createPartFromUri, createUserContent } from "@google/genai";

const [baseUrl, imagePath, prompt, maxTokens] = process.argv.slice(2);
const ai = new GoogleGenAI({ apiKey: "test-key", httpOptions: { baseUrl } });

const uploaded = await ai.files.upload({ file: imagePath, config: { mimeType: "image/png", displayName: "js upload" } });
const fetched = await ai.files.get({ name: uploaded.name });
const listed = [];
for await (const f of await ai.files.list({ config: { pageSize: 2 } })) listed.push(f.name);

const response = await ai.models.generateContent({
  model: "gemini-2.0-flash",
  contents: createUserContent([createPartFromUri(uploaded.uri, uploaded.mimeType), prompt]),
  config: { maxOutputTokens: Number(maxTokens) },
});

await ai.files.delete({ name: uploaded.name });
let afterDelete = null;
try {
  await ai.files.get({ name: uploaded.name });
} catch (e) {
  afterDelete = { status: e.status, message: e.message };
}

console.log(JSON.stringify({
  uploaded: { name: uploaded.name, state: uploaded.state, sizeBytes: uploaded.sizeBytes, mimeType: uploaded.mimeType, sha256Hash: uploaded.sha256Hash, displayName: uploaded.displayName },
  fetched: { name: fetched.name, state: fetched.state },
  listed,
  text: response.text,
  promptTokens: response.usageMetadata?.promptTokenCount,
  afterDelete,
}));
