"""Source of the small programs the capture workloads run: inference scripts and servers, and
ordinary busy programs. Each prints one line once it is ready, then runs until killed.
"""

from __future__ import annotations

import textwrap

# A one-route HTTP server; {work} is filled by the importing script.
_HTTP = """
import http.server, json, socketserver
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(answer()).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = socketserver.ThreadingTCPServer((HOST, PORT), Handler)
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
"""

PYTHON: dict[str, str] = {
    # onnxruntime scoring batches in a loop, as an offline batch job does.
    "score_batches.py": """
import sys, numpy as np, onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
print("ready", flush=True)
while True:
    session.run(None, {"x": rng.standard_normal((64, 512)).astype(np.float32)})
""",
    # a session loaded once, then idle: what a desktop app with an embedded model looks like.
    "embedded_model.py": """
import sys, time, numpy as np, onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
session.run(None, {"x": np.ones((1, 512), dtype=np.float32)})
print("ready", flush=True)
time.sleep(3600)
""",
    "ort_http.py": """
import sys, numpy as np, onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
HOST, PORT = sys.argv[2], int(sys.argv[3])
def answer():
    return session.run(None, {"x": np.ones((8, 512), dtype=np.float32)})[0].tolist()
"""
    + _HTTP,
    "run_torchscript.py": """
import sys, torch
model = torch.jit.load(sys.argv[1]).eval()
print("ready", flush=True)
with torch.inference_mode():
    while True:
        model(torch.randn(64, 512))
""",
    "torch_serve.py": """
import sys, torch
model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(),
    torch.nn.Linear(1024, 512), torch.nn.ReLU(), torch.nn.Linear(512, 16))
model.load_state_dict(torch.load(sys.argv[1], weights_only=True))
model.eval()
HOST, PORT = sys.argv[2], int(sys.argv[3])
def answer():
    with torch.inference_mode():
        return model(torch.randn(8, 512)).tolist()
"""
    + _HTTP,
    "generate.py": """
import sys, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
print("ready", flush=True)
while True:
    model.generate(torch.tensor([[1, 260, 261, 262]]), max_new_tokens=32, do_sample=True)
""",
    "chat_server.py": """
import sys, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
HOST, PORT = sys.argv[2], int(sys.argv[3])
def answer():
    out = model.generate(torch.tensor([[1, 260, 261]]), max_new_tokens=24, do_sample=True)
    return out.tolist()
"""
    + _HTTP,
    "notebook_kernel.py": """
import sys, time, torch
model = torch.jit.load(sys.argv[1]).eval()
with torch.inference_mode():
    model(torch.randn(4, 512))
print("ready", flush=True)
time.sleep(3600)
""",
    "embed_server.py": """
import sys, torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1]).eval()
HOST, PORT = sys.argv[2], int(sys.argv[3])
def answer():
    with torch.inference_mode():
        return model(torch.tensor([[1, 300, 301, 302]])).last_hidden_state.mean(1).tolist()
"""
    + _HTTP,
    "keras_predict.py": """
import sys, numpy as np, keras
model = keras.saving.load_model(sys.argv[1])
print("ready", flush=True)
while True:
    model.predict(np.random.standard_normal((256, 256)).astype("float32"), verbose=0)
""",
    # ordinary programs
    # A NATS client publishing without subscribers: nats-server parses every message.
    "nats_publish.py": """
import socket
s = socket.create_connection(("127.0.0.1", 4222))
s.recv(4096)
s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\\r\\n')
batch = b"PUB capture.load 11\\r\\nhello world\\r\\n" * 500
while True:
    s.sendall(batch)
""",
    "matrix_job.py": """
import numpy as np
a = np.random.default_rng(0).standard_normal((768, 768))
print("ready", flush=True)
while True:
    a = np.tanh(a @ a.T / 768.0)
""",
    "big_arrays.py": """
import time, numpy as np
blocks = [np.ones(128 << 20 >> 3) for _ in range(12)]
print("ready", flush=True)
while True:
    for block in blocks:
        block *= 1.0000001
    time.sleep(0.5)
""",
    "log_indexer.py": """
import mmap, re, sys, time
with open(sys.argv[1], "rb") as f:
    data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    print("ready", flush=True)
    while True:
        count = len(re.findall(rb"ERROR [0-9]+", data[: 64 << 20]))
        time.sleep(0.2)
""",
    "slow_tests.py": """
import hashlib, time
def test_hashing():
    for n in range(200000):
        hashlib.sha256(str(n).encode()).digest()
def test_sleepy():
    time.sleep(600)
""",
    "sklearn_fit.py": """
import numpy as np
from sklearn.ensemble import RandomForestClassifier
rng = np.random.default_rng(0)
x, y = rng.standard_normal((4000, 20)), rng.integers(0, 2, 4000)
print("ready", flush=True)
while True:
    RandomForestClassifier(n_estimators=40, n_jobs=1, random_state=0).fit(x, y)
""",
}

_LLAMA = textwrap.dedent(
    """\
    import http from "node:http";
    import {getLlama} from "node-llama-cpp";
    const [model, host, port, mode] = process.argv.slice(2);
    const llama = await getLlama({build: "never", gpu: false, usePrebuiltBinaries: true,
                                  progressLogs: false, logLevel: "error"});
    const loaded = await llama.loadModel({modelPath: model});
    const context = await loaded.createContext({contextSize: 256});
    const sequence = context.getSequence();
    async function generate(count) {
      await sequence.clearHistory();
      let made = 0;
      for await (const token of sequence.evaluate(loaded.tokenize("a b a"))) {
        if (++made >= count) break;
      }
      return made;
    }
    await generate(4);
    if (mode === "loop") {
      console.log("ready");
      for (;;) await generate(64);
    }
    if (mode === "idle") {  // an app holding a loaded model between uses
      console.log("ready");
      setInterval(() => {}, 1 << 30);
    } else {
      serve();
    }
    function serve() {
    const server = http.createServer(async (request, response) => {
      const made = await generate(32);
      response.writeHead(200, {"content-type": "application/json"});
      response.end(JSON.stringify({generated: made}));
    });
    server.listen(Number(port), host, () => console.log(JSON.stringify(
      {port: server.address().port})));
    }
    """
)

NODE: dict[str, str] = {
    "llama-serve.mjs": _LLAMA,
    "app.mjs": _LLAMA,  # the disguised copy, run by a renamed node binary
    "web.mjs": textwrap.dedent(
        """\
        import http from "node:http";
        const port = Number(process.argv[2] || 0);
        const server = http.createServer((request, response) => {
          let total = 0;
          for (let i = 0; i < 200000; i++) total += Math.sqrt(i);
          response.end(String(total));
        });
        server.listen(port, "0.0.0.0", () => console.log(JSON.stringify(
          {port: server.address().port})));
        """
    ),
    "crunch.mjs": textwrap.dedent(
        """\
        const primes = [];
        console.log("ready");
        for (let n = 2; ; n++) {
          if (primes.every((p) => p * p > n || n % p)) primes.push(n);
          if (primes.length > 200000) primes.length = 0;
        }
        """
    ),
}

JAVA_SERVER = textwrap.dedent(
    """\
    import com.sun.net.httpserver.HttpServer;
    import java.net.InetSocketAddress;
    public class Server {
      public static void main(String[] args) throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/", exchange -> {
          byte[] body = "ok".getBytes();
          exchange.sendResponseHeaders(200, body.length);
          exchange.getResponseBody().write(body);
          exchange.close();
        });
        server.start();
        System.out.println("{\\"port\\": " + server.getAddress().getPort() + "}");
      }
    }
    """
)


def rust_source(functions: int) -> str:
    """A Rust program that keeps rustc busy for seconds at --release."""
    body = [
        f"fn f{i}(v: &[u64]) -> u64 {{ v.iter().map(|x| x.wrapping_mul({i} + 1) ^ "
        f"(x >> {i % 13})).filter(|x| x % {i % 7 + 2} == 0).sum() }}"
        for i in range(functions)
    ]
    calls = " ".join(f"t = t.wrapping_add(f{i}(&v));" for i in range(functions))
    main = f"fn main() {{ let v: Vec<u64> = (0..1000).collect(); let mut t = 0u64; {calls} "
    return "\n".join([*body, main + 'println!("{}", t); }']) + "\n"


def c_source(functions: int) -> str:
    """A C file that keeps cc1 busy for seconds at -O2."""
    body = [
        f"double f{i}(double x) {{ double s = 0; for (int k = 0; k < {i % 50 + 10}; k++) "
        f"s += x * k / (k + {i} + 1.0); return s; }}"
        for i in range(functions)
    ]
    return "\n".join(body) + "\n"


CPP_SOURCE = textwrap.dedent(
    """\
    #include <map>
    #include <regex>
    #include <string>
    #include <vector>
    #include <algorithm>
    #include <iostream>
    template <int N> struct Fib {
      static constexpr long value = Fib<N-1>::value + Fib<N-2>::value;
    };
    template <> struct Fib<0> { static constexpr long value = 0; };
    template <> struct Fib<1> { static constexpr long value = 1; };
    int main() {
      std::map<std::string, std::vector<std::regex>> table;
      table["a"].emplace_back("[a-z]+[0-9]*");
      std::cout << Fib<80>::value << table.size() << std::endl;
    }
    """
)
