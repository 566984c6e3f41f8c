// A conversation in the playground, in real Chromium: two picks (the second replaces the first), a file that is not
// an image (refused at once), a detection, a follow-up question in the same conversation, "Get code", "New chat".
// Usage: node playground_flow.mjs BASE_URL FIRST_IMAGE SECOND_IMAGE NOT_AN_IMAGE SCREENSHOT_PATH
// Prints one JSON object; tests/sdk/test_playground.py asserts on it.
import { chromium } from "playwright-core";

const [baseUrl, firstImage, secondImage, notAnImage, screenshotPath] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const settled = () => ["done", "error"].includes(document.querySelector("#status").dataset.state);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  const failedRequests = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("response", (r) => { if (r.status() >= 400) failedRequests.push(`${r.status()} ${r.url()}`); });
  await page.goto(`${baseUrl}/`);
  await page.fill("#api-key", "test-key");
  await page.dispatchEvent("#api-key", "change");
  await page.waitForFunction(() => document.querySelectorAll("#model option").length > 0);
  const thumbs = () => page.evaluate(() => [...document.querySelectorAll("#thumbs img, #thumbs figcaption")].map((t) => t.alt || t.textContent));
  const picture = () => page.evaluate(() => document.querySelector("#stage img.picture")?.alt ?? null);

  await page.setInputFiles("#file-input", firstImage);
  await page.waitForSelector("#stage img.picture");
  await page.setInputFiles("#file-input", secondImage);
  await page.waitForFunction(() => document.querySelectorAll("#thumbs figure").length === 1 && document.querySelector("#stage img.picture").alt !== "");
  const afterSecondPick = { thumbs: await thumbs(), picture: await picture() };

  await page.setInputFiles("#file-input", notAnImage);
  await page.waitForFunction(() => document.querySelector("#error").textContent !== "");
  const afterNotAnImage = { thumbs: await thumbs(), picture: await picture(), error: await page.textContent("#error") };

  await page.click("button[data-preset=detect]");
  await page.click("#send");
  await page.waitForFunction(settled, null, { timeout: 120000 });
  const first = await page.evaluate(() => ({
    status: document.querySelector("#status").dataset.state,
    error: document.querySelector("#error").textContent,
    answer: document.querySelector("#answer").textContent,
    turns: [...document.querySelectorAll("#history .turn")].map((t) => t.className),
    thumbs: document.querySelectorAll("#thumbs figure").length,
    boxes: document.querySelectorAll("#stage .box").length,
  }));
  first.picture = await picture();

  await page.fill("#prompt", "What is in this image? Answer in one sentence.");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").dataset.state === "running" || document.querySelectorAll("#history .turn").length === 3);
  await page.waitForFunction(settled, null, { timeout: 120000 });
  const second = await page.evaluate(() => ({
    status: document.querySelector("#status").dataset.state,
    error: document.querySelector("#error").textContent,
    answer: document.querySelector("#answer").textContent,
    turns: [...document.querySelectorAll("#history .turn")].map((t) => t.className),
    // The request as sent: the whole conversation (lastRequest is the page's own record of it).
    sentRoles: lastRequest.body.contents.map((c) => c.role),
    sentImages: lastRequest.body.contents.map((c) => c.parts.filter((p) => p.inlineData || p.fileData).length),
  }));

  await page.click("#get-code");
  await page.waitForSelector("#code[open]");
  const code = { python: await page.textContent("#code-python"), curl: await page.textContent("#code-curl") };
  await page.screenshot({ path: screenshotPath, fullPage: true });
  await page.click("#close-code");

  await page.click("#new-chat");
  const afterNewChat = await page.evaluate(() => ({
    turns: document.querySelectorAll("#history .turn").length,
    picture: document.querySelector("#stage img.picture") !== null,
    answer: document.querySelector("#answer").textContent,
  }));
  const favicon = await page.evaluate(async () => {
    const r = await fetch("favicon.ico");
    return { status: r.status, type: r.headers.get("content-type") };
  });
  console.log(JSON.stringify({ afterSecondPick, afterNotAnImage, first, second, code, afterNewChat, favicon, consoleErrors, failedRequests }));
} finally {
  await browser.close();
}
