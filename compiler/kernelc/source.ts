// What a source file offers the translator: its imports from the kernel DSL, the functions it declares
// or imports (inline helpers), and the tags that mark kernels, fragments and helpers.
import path from 'node:path';
import type { FunctionDeclaration, SourceFile } from 'ts-morph';

/** Names a file imports from the kernel DSL, mapped to the DSL's own names. */
export function dslImports(sf: SourceFile): Map<string, string> {
  const names = new Map<string, string>();
  for (const imp of sf.getImportDeclarations()) {
    if (!/compiler\/kernel\/dsl(\.js)?$/.test(imp.getModuleSpecifierValue())) continue;
    for (const n of imp.getNamedImports()) names.set(n.getAliasNode()?.getText() ?? n.getName(), n.getName());
  }
  return names;
}

/** A function declared in `sf`, or imported into it from another file by name. */
export function resolveFunction(sf: SourceFile, name: string): FunctionDeclaration | undefined {
  const local = sf.getFunction(name);
  if (local) return local;
  for (const imp of sf.getImportDeclarations()) {
    const named = imp.getNamedImports().find((n) => (n.getAliasNode()?.getText() ?? n.getName()) === name);
    if (named) return imp.getModuleSpecifierSourceFile()?.getFunction(named.getName());
  }
  return undefined;
}

/** The file's path from the repository root, with forward slashes (as error messages name it). */
export const relPath = (root: string, sf: SourceFile) => path.relative(root, sf.getFilePath()).split(path.sep).join('/');
export const hasTag = (fn: FunctionDeclaration, tag: string) => fn.getJsDocs().some((d) => d.getTags().some((t) => t.getTagName() === tag));
