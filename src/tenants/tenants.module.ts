import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { UsersModule } from '../users/users.module.js';
import { ApiKeyAuditEntity } from './api-key-audit.entity.js';
import { ApiKeyEntity } from './api-key.entity.js';
import { ApiKeysController } from './api-keys.controller.js';
import { ApiKeysService } from './api-keys.service.js';
import { CompaniesService } from './companies.service.js';
import { CompanyController } from './company.controller.js';
import { CompanyEntity } from './company.entity.js';
import { InternalApiKeyAliasesController } from './internal-api-key-aliases.controller.js';
import { InternalController } from './internal.controller.js';
import { OperatorService } from './operator.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([CompanyEntity, ApiKeyEntity, ApiKeyAuditEntity]), UsersModule],
  controllers: [CompanyController, ApiKeysController, InternalController, InternalApiKeyAliasesController],
  providers: [CompaniesService, ApiKeysService, OperatorService],
  exports: [CompaniesService, ApiKeysService],
})
export class TenantsModule {}
