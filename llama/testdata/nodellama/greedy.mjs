// greedy.mjs runs a GGUF model (and optionally LoRA adapters) in node-llama-cpp,
// an independent build of llama.cpp, and prints its greedy continuation as JSON.
// fireact's conformance test (llama/nodellama_test.go) compares it with ours.
//
// Usage: node greedy.mjs REQUEST_JSON
//   {"model": "m.gguf", "lora": [{"path": "a.gguf", "scale": 1}], "prompt": [1, 42, ...],
//    "n": 16, "ctx": 128, "threads": 1, "text": "tokenize me"}
// Prints one line: {"tokens": [...], "tokenized": [...], "n_vocab": N}
// ("tokenized": the text's ids without special tokens, when text is given).
// The package is found through NODE_PATH or the working directory's
// node_modules (the test sets NODE_PATH to the project's .deps/node).
import {createRequire} from "node:module";
import path from "node:path";
import {pathToFileURL} from "node:url";

const req = JSON.parse(process.argv[2] ?? "");
if (!req.model || !Array.isArray(req.prompt) || req.prompt.length === 0 || !(req.n > 0)) {
    console.error("greedy.mjs: the request needs model, a non-empty prompt (token ids) and n > 0");
    process.exit(2);
}

// ESM ignores NODE_PATH: resolve the package's entry point by hand.
async function importNodeLlama() {
    const dirs = (process.env.NODE_PATH ?? "").split(path.delimiter).filter(Boolean);
    dirs.push(path.join(process.cwd(), "node_modules"));
    for (const d of dirs) {
        try {
            const require = createRequire(path.join(d, "noop.js"));
            return await import(pathToFileURL(require.resolve("node-llama-cpp")).href);
        } catch (e) {
            if (e?.code !== "MODULE_NOT_FOUND" && e?.code !== "ERR_MODULE_NOT_FOUND") throw e;
        }
    }
    console.error("greedy.mjs: node-llama-cpp not found in NODE_PATH (" + dirs.join(", ") + ")");
    process.exit(3);
}

const {getLlama, LlamaLogLevel} = await importNodeLlama();
// CPU only, the prebuilt binary, never a download or a build: the test runs offline.
const llama = await getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false,
    logLevel: LlamaLogLevel.error, maxThreads: req.threads ?? 1,
});
const model = await llama.loadModel({modelPath: req.model, gpuLayers: 0});
const lora = (req.lora ?? []).map((a) => ({filePath: a.path, scale: a.scale ?? 1}));
const context = await model.createContext({
    contextSize: req.ctx ?? 128, batchSize: Math.min(req.ctx ?? 128, 512), sequences: 1,
    threads: req.threads ?? 1, lora: lora.length > 0 ? {adapters: lora} : undefined,
});
const sequence = context.getSequence();
const tokens = [];
// temperature 0: argmax at every step, no sampler state, so both sides must
// agree; an end-of-generation token is yielded and generation goes on past it,
// as fireact's IgnoreEOS does, so the two continuations have the same length.
for await (const t of sequence.evaluate(req.prompt, {temperature: 0, yieldEogToken: true})) {
    tokens.push(t);
    if (tokens.length >= req.n) break;
}
const out = {tokens, n_vocab: model.vocabSize ?? null};
if (typeof req.text === "string") out.tokenized = model.tokenize(req.text, false);
console.log(JSON.stringify(out));
await context.dispose();
await model.dispose();
await llama.dispose();
