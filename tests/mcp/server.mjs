// A coding assistant's tools, served over Streamable HTTP by the official
// MCP SDK (@modelcontextprotocol/sdk): what the gateway stands in front
// of in the tests, the benchmark and the demo.
//
//   node server.mjs [--port 0] [--root DIR] [--json] [--token SECRET]
//
// Tools: read_file and list_files (read-only, by their annotations),
// run_command (destructive: it "runs" a command, in fact it only echoes
// it), and delete_file (destructive; it deletes nothing). Sessions are
// stateful, as the SDK makes them (protocol 2025-11-25 and before);
// --json answers with JSON instead of SSE streams. With --token, every
// request must carry `Authorization: Bearer SECRET` (the gateway's own
// credential). GET /calls (outside the MCP endpoint) answers the JSON-RPC
// messages received so far, so a test can tell what reached the server.
// Prints `mcp-upstream listening on URL` once it listens on 127.0.0.1.

import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const port = Number(arg('port', '0'));
const root = path.resolve(arg('root', process.cwd()));
const json = process.argv.includes('--json');
const token = arg('token', undefined);

/** The messages received, in order: { method, name, headers }. */
const received = [];

function tools() {
  const server = new McpServer({ name: 'mandate-test-tools', version: '1.0.0' });
  const inside = (p) => {
    const full = path.resolve(root, p);
    if (full !== root && !full.startsWith(root + path.sep)) throw new Error('outside the root');
    return full;
  };
  server.registerTool('read_file', {
    title: 'Read a file',
    description: 'Reads a text file under the project root.',
    inputSchema: { path: z.string() },
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, async ({ path: p }) => ({ content: [{ type: 'text', text: await readFile(inside(p), 'utf8') }] }));
  server.registerTool('list_files', {
    title: 'List files',
    description: 'Lists a directory under the project root.',
    inputSchema: { path: z.string().default('.') },
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, async ({ path: p }) => ({ content: [{ type: 'text', text: (await readdir(inside(p))).sort().join('\n') }] }));
  server.registerTool('run_command', {
    title: 'Run a command',
    description: 'Runs a shell command in the project (this test server only echoes it).',
    inputSchema: { command: z.string() },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  }, async ({ command }) => ({ content: [{ type: 'text', text: `ran: ${command}` }] }));
  server.registerTool('delete_file', {
    title: 'Delete a file',
    description: 'Deletes a file (this test server deletes nothing).',
    inputSchema: { path: z.string() },
    annotations: { destructiveHint: true },
  }, async ({ path: p }) => ({ content: [{ type: 'text', text: `deleted: ${p}` }] }));
  return server;
}

const transports = new Map();

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

const http = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/calls' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(received));
      return;
    }
    if (url.pathname !== '/mcp') {
      res.writeHead(404).end();
      return;
    }
    if (token && req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
      return;
    }
    const body = req.method === 'POST' ? JSON.parse(await readBody(req)) : undefined;
    if (body) {
      received.push({
        method: body.method ?? null,
        name: body.params?.name ?? body.params?.uri ?? null,
        authorization: req.headers.authorization ?? null,
        dpop: req.headers.dpop ?? null,
        traceparent: req.headers.traceparent ?? null,
      });
    }
    const sid = req.headers['mcp-session-id'];
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport) {
      if (sid || body?.method !== 'initialize') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
        return;
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: json,
        onsessioninitialized: (id) => transports.set(id, transport),
      });
      transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
      await tools().connect(transport);
    }
    await transport.handleRequest(req, res, body);
  } catch (e) {
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: String(e.message ?? e) } }));
  }
});

http.listen(port, '127.0.0.1', () => {
  console.log(`mcp-upstream listening on http://127.0.0.1:${http.address().port}/mcp`);
});
process.on('SIGTERM', () => process.exit(0));
