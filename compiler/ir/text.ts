// The graph IR as text: Graph.toString() prints it, parseGraph() reads it back (an ohm-js grammar),
// so passes can be tested as IR in -> IR out, and a dump can be edited and fed back.
import * as ohm from 'ohm-js';
import { GraphBuilder, fmtType, type Attr, type Graph, type Node } from './graph.js';
import { TapirError } from '../errors.js';
import type { OpSet } from './opset.js';

const grammar = ohm.grammar(String.raw`
TapirIR {
  Program = Stmt* Return
  Stmt = ref "=" ident "(" ListOf<ref, ","> ")" Attrs? ":" Type
  Attrs = "{" Attr* "}"
  Attr = ident "=" Value
  Value = string | number | bool | List | Record
  List = "[" ListOf<Value, ","> "]"
  Record = "{" Attr* "}"
  Type = ident "[" ListOf<number, ","> "]"
  Return = "return" Output*
  Output = ident "=" ref
  ref = "%" digit+
  ident = (letter | "_") (alnum | "_" | ".")*
  number = "-"? digit+ ("." digit+)? (("e" | "E") ("-" | "+")? digit+)?
  string = "\"" (escape | ~"\"" any)* "\""
  escape = "\\" any
  bool = "true" | "false"
  space += comment
  comment = "#" (~"\n" any)*
}`);

export class IRParseError extends TapirError {
  override name = 'IRParseError';
}

export const printGraph = (g: Graph) => g.toString();

/** Text -> graph. Every type written after `:` is checked against what the op infers. */
export function parseGraph(text: string, opset: OpSet, file = 'ir'): Graph {
  const m = grammar.match(text);
  if (m.failed()) throw new IRParseError(`${file}: ${m.shortMessage ?? 'syntax error'}`);
  const g = new GraphBuilder();
  const refs = new Map<string, Node>();
  const sem = grammar.createSemantics();
  sem.addOperation('value', {
    string(_o, _c, _e) { return JSON.parse(this.sourceString) as string; },
    number(_a, _b, _c, _d, _e, _f, _g) { return Number(this.sourceString); },
    bool(_b) { return this.sourceString === 'true'; },
    List(_o, list, _c) { return list.asIteration().children.map((c: ohm.Node) => c['value']()); },
    // a record's fields as written; the node hash orders keys itself (graph.ts's canonical)
    Record(_o, fields, _c) { return Object.fromEntries(fields.children.map((f: ohm.Node) => [f.children[0]!.sourceString, f.children[2]!['value']()])); },
    Value(v) { return v['value'](); },
  });
  sem.addOperation('build', {
    Program(stmts, ret) {
      stmts.children.forEach((s: ohm.Node) => s['build']());
      return ret['build']();
    },
    Stmt(ref, _eq, ident, _o, srcs, _c, attrs, _colon, type) {
      const op = opset.ops.get(ident.sourceString);
      const where = `${file}:${ref.source.getLineAndColumn().lineNum}`;
      if (!op) throw new IRParseError(`${where}: unknown op '${ident.sourceString}'`);
      const args = srcs.asIteration().children.map((r: ohm.Node) => {
        const n = refs.get(r.sourceString);
        if (!n) throw new IRParseError(`${where}: ${r.sourceString} is used before it is defined`);
        return n;
      });
      const attr: Record<string, unknown> = Object.create(null);
      for (const a of attrs.children[0]?.children[1]?.children ?? []) attr[a.children[0]!.sourceString] = a.children[2]!['value']();
      if (refs.has(ref.sourceString)) throw new IRParseError(`${where}: ${ref.sourceString} is defined twice`);
      const node = g.apply(op, args, { ...attr } as Attr);
      if (fmtType(node.type) !== type.sourceString.replace(/\s+/g, '')) throw new IRParseError(`${where}: ${ident.sourceString} gives ${fmtType(node.type)}, the text says ${type.sourceString}`);
      refs.set(ref.sourceString, node);
      return node;
    },
    Return(_r, outputs) {
      const outs: Record<string, Node> = {};
      for (const o of outputs.children) {
        const n = refs.get(o.children[2]!.sourceString);
        if (!n) throw new IRParseError(`${file}: return names undefined ${o.children[2]!.sourceString}`);
        outs[o.children[0]!.sourceString] = n;
      }
      return g.finish(outs);
    },
  });
  return sem(m)['build']() as Graph;
}
