import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Patch, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../common/access/access.decorators.js';
import type { Tenant } from '../common/access/principal.js';
import { OffsetPageQuery } from '../common/pagination.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { CreateUserDto, UpdateUserDto, UserDto } from './dto/users.dto.js';
import { UsersService } from './users.service.js';

@ApiTags('users')
@Controller('api/v1/users')
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Get()
  @Access.tenant('agent', 'users:read')
  @ApiOperation({ summary: 'List the users of the company (an agent sees only itself)', operationId: 'listUsers' })
  @ApiOkResponse({ description: '{ data: User[], pagination }' })
  @ApiProblems(400)
  list(@CurrentTenant() tenant: Tenant, @Query() query: OffsetPageQuery) {
    return this.users.list(tenant, query);
  }

  @Post()
  @Access.tenant('manager', 'users:write')
  @ApiOperation({
    summary: 'Create a user',
    description: 'Managers create agents; admins anyone but owners; owners anyone. Password: 12 characters or more.',
    operationId: 'createUser',
  })
  @ApiCreatedResponse({ type: UserDto })
  @ApiProblems(400, 409)
  create(@CurrentTenant() tenant: Tenant, @Body() dto: CreateUserDto) {
    return this.users.create(tenant, dto);
  }

  @Get(':id')
  @Access.tenant('agent', 'users:read')
  @ApiOperation({ summary: 'Get a user', operationId: 'getUser' })
  @ApiOkResponse({ type: UserDto })
  @ApiProblems(400, 404)
  get(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.users.get(tenant, id);
  }

  @Patch(':id')
  @Access.tenant('manager', 'users:write')
  @ApiOperation({ summary: 'Change a user (name, role, password, preferences)', operationId: 'updateUser' })
  @ApiOkResponse({ type: UserDto })
  @ApiProblems(400, 404)
  update(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string, @Body() dto: UpdateUserDto) {
    return this.users.update(tenant, id, dto);
  }

  @Delete(':id')
  @HttpCode(204)
  @Access.tenant('manager', 'users:write')
  @ApiOperation({ summary: 'Delete a user (their sessions end)', operationId: 'deleteUser' })
  @ApiNoContentResponse()
  @ApiProblems(400, 404, 409)
  remove(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.users.remove(tenant, id);
  }
}
