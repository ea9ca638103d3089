import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import type { SelectQueryBuilder } from 'typeorm';
import { commonError } from './errors/common.errors.js';

export const MAX_PAGE_SIZE = 200;

class LimitQuery {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_PAGE_SIZE)
  limit = 50;
}

export class OffsetPageQuery extends LimitQuery {
  @ApiPropertyOptional({ type: 'integer', minimum: 0, default: 0 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  offset = 0;
}

export interface OffsetPage<T> {
  data: T[];
  pagination: { limit: number; offset: number; total: number; hasMore: boolean };
}

export function offsetPage<T>(data: T[], total: number, query: OffsetPageQuery): OffsetPage<T> {
  return {
    data,
    pagination: { limit: query.limit, offset: query.offset, total, hasMore: query.offset + data.length < total },
  };
}

export class CursorPageQuery extends LimitQuery {
  @ApiPropertyOptional({ description: 'Opaque cursor: the `next` of the previous page' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  cursor?: string;
}

export interface CursorPage<T> {
  data: T[];
  /** Cursor of the next page; null on the last page. */
  next: string | null;
}

/**
 * A keyset position: newest first by (time, id). `at` is the exact time of the row as PostgreSQL
 * stores it (ISO 8601 UTC, to the microsecond): a JS Date keeps milliseconds only, and a cursor
 * cut to the millisecond skips the rows that share the last row's time.
 */
export interface Keyset {
  at: string;
  id: string;
}

const CURSOR_AT = /^(19[7-9]\d|[2-9]\d{3})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;
const CURSOR_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function encodeCursor(k: Keyset): string {
  return Buffer.from(JSON.stringify([k.at, k.id])).toString('base64url');
}

export function decodeCursor(cursor: string): Keyset {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    // A well-formed time that is a real one (no 30 February), and a UUID: anything else would
    // reach the database as a bad value.
    const valid =
      typeof at === 'string' &&
      CURSOR_AT.test(at) &&
      !Number.isNaN(Date.parse(at)) &&
      new Date(at).toISOString().slice(0, 19) === at.slice(0, 19) &&
      typeof id === 'string' &&
      CURSOR_ID.test(id);
    if (!valid) throw new Error('bad');
    return { at, id };
  } catch {
    throw commonError('invalid-cursor', 'The cursor is not one this API gave out.');
  }
}

/**
 * One page of a TypeORM query, newest first by (`timeColumn`, id), with the exact-time keyset
 * cursor (see Keyset). `alias` is the query's alias; `timeColumn` the column name in SQL.
 */
export async function keysetPage<E extends { id: string }, V>(
  qb: SelectQueryBuilder<E>,
  alias: string,
  timeColumn: string,
  query: CursorPageQuery,
  view: (row: E) => V,
): Promise<CursorPage<V>> {
  if (query.cursor) {
    const k = decodeCursor(query.cursor);
    if (k.at.startsWith('0000')) throw commonError('invalid-cursor', 'The cursor is not one this API gave out.');
    qb.andWhere(`(${alias}.${timeColumn}, ${alias}.id) < (CAST(:cursorAt AS timestamptz), CAST(:cursorId AS uuid))`, {
      cursorAt: k.at,
      cursorId: k.id,
    });
  }
  const { entities: rows, raw } = await qb
    .addSelect(`to_char(${alias}.${timeColumn} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`, 'cursor_at')
    .orderBy(`${alias}.${timeColumn}`, 'DESC')
    .addOrderBy(`${alias}.id`, 'DESC')
    .limit(query.limit + 1)
    .getRawAndEntities<{ cursor_at: string }>();
  const more = rows.length > query.limit;
  const data = more ? rows.slice(0, query.limit) : rows;
  const last = data[data.length - 1];
  const lastAt = raw[data.length - 1]?.cursor_at;
  return {
    data: data.map(view),
    next: more && last && lastAt ? encodeCursor({ at: lastAt, id: last.id }) : null,
  };
}
