import 'reflect-metadata';
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DataSource } from 'typeorm';
import { loadConfig } from '../config/config.schema.js';
import { dataSourceOptions } from './data-source.js';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from './embedded-postgres.js';
import { revertLastMigration, runMigrations, schemaDiff, withDataSource } from './migrator.js';

/**
 * `npm run migration:run | migration:revert | migration:show | migration:generate -- <Name>`.
 * Uses DATABASE_URL, or the embedded PostgreSQL exactly as `npm start` does. `generate` compares
 * the compiled entities (`dist/src/**\/*.entity.js`) with the database and writes the difference
 * as a new migration in `migrations/`, and lists it in `migrations/index.ts`.
 */
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');

async function main(): Promise<void> {
  const [command, name] = process.argv.slice(2);
  const config = loadConfig(process.env);
  let embedded: EmbeddedPostgresHandle | undefined;
  let url = config.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedPostgres({
      dataDir: config.EMBEDDED_PG_DIR,
      port: config.EMBEDDED_PG_PORT,
      persistent: true,
      database: 'switchboard',
    });
    url = embedded.url;
  }
  try {
    switch (command) {
      case 'run': {
        const applied = await runMigrations(url);
        console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Nothing to apply: the schema is up to date.');
        break;
      }
      case 'revert':
        await revertLastMigration(url);
        console.log('Reverted the last migration.');
        break;
      case 'show':
        await withDataSource(dataSourceOptions(url, 2), async (ds) => {
          const pending = await ds.showMigrations();
          console.log(pending ? 'Some migrations are pending.' : 'No pending migrations.');
        });
        break;
      case 'generate':
        await generate(url, name);
        break;
      default:
        console.error('usage: migration-cli run | revert | show | generate <Name>');
        process.exitCode = 2;
    }
  } finally {
    await embedded?.stop();
  }
}

async function generate(url: string, name: string | undefined): Promise<void> {
  if (!name || !/^[A-Z][A-Za-z0-9]*$/.test(name)) throw new Error('generate needs a PascalCase name, e.g. AddCalls');
  const entities = await loadEntities(join(root, 'dist', 'src'));
  const ds = new DataSource(dataSourceOptions(url, 2, entities));
  await ds.initialize();
  try {
    const pending = await ds.showMigrations();
    if (pending) throw new Error('Apply pending migrations first (npm run migration:run).');
    const { up, down } = await schemaDiff(ds);
    if (up.length === 0) {
      console.log('No changes: entities and migrations are in step.');
      return;
    }
    const timestamp = Date.now();
    const className = `${name}${timestamp}`;
    const fileBase = `${timestamp}-${name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()}`;
    const q = (sql: string) => `    await q.query(${JSON.stringify(sql)});`;
    writeFileSync(
      join(root, 'migrations', `${fileBase}.ts`),
      `import type { MigrationInterface, QueryRunner } from 'typeorm';

export class ${className} implements MigrationInterface {
  name = '${className}';

  async up(q: QueryRunner): Promise<void> {
${up.map(q).join('\n')}
  }

  async down(q: QueryRunner): Promise<void> {
${[...down].reverse().map(q).join('\n')}
  }
}
`,
    );
    writeIndex();
    console.log(`Wrote migrations/${fileBase}.ts (${up.length} statement(s)); review it, then npm run migration:run.`);
  } finally {
    await ds.destroy();
  }
}

/** Rewrites migrations/index.ts from the files in migrations/, oldest first. */
function writeIndex(): void {
  const files = readdirSync(join(root, 'migrations'))
    .filter((f) => /^\d{13}-[\w-]+\.ts$/.test(f))
    .sort();
  const entries = files.map((f) => {
    const [ts, ...rest] = f.replace(/\.ts$/, '').split('-');
    const cls = rest.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('') + ts;
    return { cls, file: f.replace(/\.ts$/, '.js') };
  });
  writeFileSync(
    join(root, 'migrations', 'index.ts'),
    `// Every migration, oldest first. \`npm run migration:generate -- <Name>\` adds new ones here.
// A landed migration is never edited: write a new one.
${entries.map((e) => `import { ${e.cls} } from './${e.file}';`).join('\n')}

export const MIGRATIONS = [${entries.map((e) => e.cls).join(', ')}];
`,
  );
}

async function loadEntities(dir: string): Promise<(new () => unknown)[]> {
  const found: (new () => unknown)[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.entity.js')) continue;
    const mod = (await import(pathToFileURL(join(entry.parentPath, entry.name)).href)) as Record<string, unknown>;
    for (const value of Object.values(mod)) if (typeof value === 'function') found.push(value as new () => unknown);
  }
  return found;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
