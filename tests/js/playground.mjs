// The playground page in real Chromium (Debian's /usr/bin/chromium, driven by playwright-core): load the page,
// enter a key, pick an image, run a preset on the bundled model (images inline, or uploaded through the File API
// first), and report what the page drew.
// Usage: node playground.mjs BASE_URL IMAGE_PATH SCREENSHOT_PATH PRESET [files]
// Prints one JSON object; tests/sdk/test_playground.py asserts on it.
import { chromium } from "playwright-core";

const [baseUrl, imagePath, screenshotPath, preset, mode] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(`${baseUrl}/`);
  await page.fill("#api-key", "test-key");
  await page.dispatchEvent("#api-key", "change");
  await page.waitForFunction(() => document.querySelectorAll("#model option").length > 0);
  await page.setInputFiles("#file-input", imagePath);
  await page.waitForSelector("#stage img.picture");
  await page.click(`button[data-preset=${preset}]`);
  if (mode === "files") await page.check("#use-files");
  await page.click("#send");
  await page.waitForFunction(() => ["done", "error"].includes(document.querySelector("#status").dataset.state), null, { timeout: 120000 });
  await page.waitForFunction(() => [...document.querySelectorAll("#stage .box canvas")].every((c) => c.dataset.ready === "1"));
  const result = await page.evaluate(() => {
    const rect = (el) => { const r = el.getBoundingClientRect(); return { x: r.x, y: r.y, width: r.width, height: r.height }; };
    return {
      status: document.querySelector("#status").dataset.state,
      error: document.querySelector("#error").textContent,
      answer: document.querySelector("#answer").textContent,
      stats: document.querySelector("#stats").textContent,
      models: [...document.querySelectorAll("#model option")].map((o) => o.value),
      picture: rect(document.querySelector("#stage img.picture")),
      boxes: [...document.querySelectorAll("#stage .box")].map((b) => ({
        box: JSON.parse(b.dataset.box), label: b.dataset.label, rect: rect(b),
        mask: b.querySelector("canvas") ? { width: b.querySelector("canvas").width, height: b.querySelector("canvas").height } : null,
      })),
      storedKey: localStorage.getItem("glimpse.apiKey"),
      // A segmentation answer's summary (colour, label, box, mask size) and whether the raw JSON is unfolded.
      summary: [...document.querySelectorAll("#summary tbody tr")].map((tr) => {
        const [, label, box, mask] = [...tr.children].map((td) => td.textContent);
        return { label, box, mask };
      }),
      rawOpen: document.querySelector("#answer-raw").open,
    };
  });
  await page.screenshot({ path: screenshotPath, fullPage: true });
  console.log(JSON.stringify({ ...result, consoleErrors }));
} finally {
  await browser.close();
}
