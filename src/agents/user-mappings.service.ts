import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { DataSource, type EntityManager, type FindOptionsWhere, In, IsNull, Repository } from 'typeorm';
import type { Tenant } from '../common/access/principal.js';
import { type AppException, type FieldError, validationFailed } from '../common/errors/common.errors.js';
import { toFieldErrors } from '../common/errors/validation.js';
import { offsetPage, type OffsetPage } from '../common/pagination.js';
import { AgentEntity } from './agent.entity.js';
import { agentsError } from './agents.errors.js';
import {
  CreateUserMappingDto,
  type UserMappingDto,
  type UserMappingListDto,
  type UserMappingListQuery,
} from './dto/user-mappings.dto.js';
import { type Provider, UserMappingEntity } from './user-mapping.entity.js';

export function toUserMappingDto(m: UserMappingEntity): UserMappingDto {
  return {
    id: m.id,
    companyId: m.companyId,
    provider: m.provider,
    externalId: m.externalId,
    agentId: m.agentId,
    crmUserId: m.crmUserId,
    createdAt: m.createdAt,
  };
}

/** A row to write, with where it was in the request (for its errors). */
interface Row {
  index: number;
  dto: CreateUserMappingDto;
}

/** Names a field of a row in errors: `agentId` for one mapping, `mappings[3].agentId` in a batch. */
type FieldNamer = (index: number, field: string) => string;

const UNIQUE_VIOLATION = '23505';
const ORDER = { createdAt: 'ASC', id: 'ASC' } as const;

/** Identities at providers (PBX user id or extension) ↔ our agent ↔ a CRM user id. */
@Injectable()
export class UserMappingsService {
  constructor(
    @InjectRepository(UserMappingEntity) private readonly repo: Repository<UserMappingEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  async list(tenant: Tenant, query: UserMappingListQuery): Promise<OffsetPage<UserMappingDto>> {
    const where: FindOptionsWhere<UserMappingEntity> = { companyId: tenant.companyId };
    if (query.provider) where.provider = query.provider;
    if (query.agentId) where.agentId = query.agentId;
    const [rows, total] = await this.repo.findAndCount({ where, order: ORDER, take: query.limit, skip: query.offset });
    return offsetPage(rows.map(toUserMappingDto), total, query);
  }

  async byProvider(tenant: Tenant, provider: Provider, externalId: string): Promise<UserMappingDto> {
    const mapping = await this.repo.findOne({ where: { companyId: tenant.companyId, provider, externalId } });
    if (!mapping) throw notFound();
    return toUserMappingDto(mapping);
  }

  async byCrmUser(tenant: Tenant, crmUserId: string): Promise<UserMappingListDto> {
    const rows = await this.repo.find({ where: { companyId: tenant.companyId, crmUserId }, order: ORDER });
    // Like any lookup by id: a CRM user this company has no mapping for is "not found".
    if (rows.length === 0) throw notFound();
    return { data: rows.map(toUserMappingDto) };
  }

  async create(tenant: Tenant, dto: CreateUserMappingDto): Promise<UserMappingDto> {
    const [created] = await this.insert(tenant.companyId, [{ index: 0, dto }], [], (_, field) => field);
    return created!;
  }

  /**
   * Up to MAX_BATCH mappings in one transaction, all or nothing. Every row is checked (shape,
   * agent, duplicates within the batch and with existing rows) before anything is written, and
   * every error names its row: `mappings[3].agentId`.
   */
  async createMany(tenant: Tenant, input: unknown[]): Promise<UserMappingListDto> {
    const rows: Row[] = [];
    const errors: [number, FieldError][] = [];
    const checked = await Promise.all(input.map((item, index) => checkRow(item, index)));
    checked.forEach((result, index) => {
      if ('errors' in result) errors.push(...result.errors.map((e): [number, FieldError] => [index, e]));
      else rows.push(result);
    });
    const data = await this.insert(tenant.companyId, rows, errors, (i, field) => `mappings[${i}].${field}`);
    return { data };
  }

  async remove(tenant: Tenant, id: string): Promise<void> {
    const result = await this.repo.delete({ id, companyId: tenant.companyId });
    if (!result.affected) throw notFound();
  }

  /**
   * Checks the rows against the database and writes them with one multi-row insert, in one
   * transaction. `shapeErrors` are those of rows already refused by their shape (left out of
   * `rows`). With any error nothing is written: 400, or 409 when the only errors are identities
   * the company has already mapped.
   */
  private async insert(
    companyId: string,
    rows: Row[],
    shapeErrors: [number, FieldError][],
    field: FieldNamer,
  ): Promise<UserMappingDto[]> {
    return this.dataSource.transaction(async (m) => {
      const invalid: [number, FieldError][] = [];
      const conflicts: [number, FieldError][] = [];

      // The same identity twice in one request.
      const first = new Map<string, number>();
      for (const { index, dto } of rows) {
        const key = identityKey(dto.provider, dto.externalId);
        const earlier = first.get(key);
        if (earlier === undefined) first.set(key, index);
        else
          invalid.push([
            index,
            {
              field: field(index, 'externalId'),
              messages: [`externalId repeats ${field(earlier, 'externalId')} for provider ${dto.provider}`],
            },
          ]);
      }

      // Agents: live ones of this company. FOR SHARE keeps them from being deleted until we commit.
      const agentIds = [...new Set(rows.map((r) => r.dto.agentId).filter((id): id is string => !!id))];
      const live = new Set(
        agentIds.length === 0
          ? []
          : (
              await m.getRepository(AgentEntity).find({
                where: { companyId, id: In(agentIds), deletedAt: IsNull() },
                select: { id: true },
                lock: { mode: 'pessimistic_read' },
              })
            ).map((a) => a.id),
      );
      for (const { index, dto } of rows) {
        if (dto.agentId && !live.has(dto.agentId)) {
          invalid.push([
            index,
            { field: field(index, 'agentId'), messages: ['agentId must be an agent of this company'] },
          ]);
        }
      }

      // Identities the company has already mapped.
      const existing = await this.existing(m, companyId, rows);
      for (const { index, dto } of rows) {
        if (existing.has(identityKey(dto.provider, dto.externalId))) {
          conflicts.push([
            index,
            {
              field: field(index, 'externalId'),
              messages: [`a mapping of provider ${dto.provider} for this externalId already exists`],
            },
          ]);
        }
      }

      if (shapeErrors.length || invalid.length) {
        throw validationFailed(inRowOrder([...shapeErrors, ...invalid, ...conflicts]));
      }
      if (conflicts.length) throw mappingExists(inRowOrder(conflicts));
      return this.write(m, companyId, rows);
    });
  }

  private async existing(m: EntityManager, companyId: string, rows: Row[]): Promise<Set<string>> {
    if (rows.length === 0) return new Set();
    const found = (await m.query(
      `SELECT provider, external_id FROM user_mappings
        WHERE company_id = $1 AND (provider, external_id) IN (SELECT * FROM unnest($2::varchar[], $3::varchar[]))`,
      [companyId, rows.map((r) => r.dto.provider), rows.map((r) => r.dto.externalId)],
    )) as { provider: string; external_id: string }[];
    return new Set(found.map((r) => identityKey(r.provider, r.external_id)));
  }

  private async write(m: EntityManager, companyId: string, rows: Row[]): Promise<UserMappingDto[]> {
    if (rows.length === 0) return [];
    const values = rows.map(({ dto }) => ({
      companyId,
      provider: dto.provider,
      externalId: dto.externalId,
      agentId: dto.agentId ?? null,
      crmUserId: dto.crmUserId ?? null,
    }));
    try {
      const result = await m
        .createQueryBuilder()
        .insert()
        .into(UserMappingEntity)
        .values(values)
        .returning('*')
        .execute();
      const created = (result.raw as RawMapping[]).map(fromRaw);
      // In the order of the request, whatever order RETURNING gave.
      const byKey = new Map(created.map((c) => [identityKey(c.provider, c.externalId), c]));
      return values.map((v) => byKey.get(identityKey(v.provider, v.externalId))!);
    } catch (error) {
      // A concurrent request mapped one of these identities after our check.
      if ((error as { code?: string }).code === UNIQUE_VIOLATION) throw mappingExists([]);
      throw error;
    }
  }
}

interface RawMapping {
  id: string;
  company_id: string;
  provider: Provider;
  external_id: string;
  agent_id: string | null;
  crm_user_id: string | null;
  created_at: Date;
}

function fromRaw(r: RawMapping): UserMappingDto {
  return {
    id: r.id,
    companyId: r.company_id,
    provider: r.provider,
    externalId: r.external_id,
    agentId: r.agent_id,
    crmUserId: r.crm_user_id,
    createdAt: r.created_at,
  };
}

/** One row of a batch, checked as the global pipe checks a body: its shape and nothing unknown. */
async function checkRow(item: unknown, index: number): Promise<Row | { errors: FieldError[] }> {
  const prefix = `mappings[${index}]`;
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return { errors: [{ field: prefix, messages: [`${prefix} must be an object`] }] };
  }
  const dto = plainToInstance(CreateUserMappingDto, item);
  const failures = await validate(dto, { whitelist: true, forbidNonWhitelisted: true, stopAtFirstError: false });
  return failures.length ? { errors: toFieldErrors(failures, prefix) } : { index, dto };
}

function identityKey(provider: string, externalId: string): string {
  return `${provider}\u0000${externalId}`;
}

function inRowOrder(errors: [number, FieldError][]): FieldError[] {
  return errors.sort((a, b) => a[0] - b[0]).map(([, e]) => e);
}

function mappingExists(errors: FieldError[]): AppException {
  return agentsError(
    'mapping-exists',
    'The company already maps this identity at the provider.',
    errors.length ? { errors } : {},
  );
}

function notFound(): AppException {
  return agentsError('not-found', 'No such user mapping.');
}
