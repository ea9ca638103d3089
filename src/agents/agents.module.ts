import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { UsersModule } from '../users/users.module.js';
import { AgentEntity } from './agent.entity.js';
import { AgentsController } from './agents.controller.js';
import { AgentsService } from './agents.service.js';
import { UserMappingEntity } from './user-mapping.entity.js';
import { UserMappingsController } from './user-mappings.controller.js';
import { UserMappingsService } from './user-mappings.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([AgentEntity, UserMappingEntity]), UsersModule],
  controllers: [AgentsController, UserMappingsController],
  providers: [AgentsService, UserMappingsService],
  exports: [AgentsService],
})
export class AgentsModule {}
