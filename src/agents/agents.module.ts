import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AgentEntity } from './agent.entity.js';
import { AgentsService } from './agents.service.js';
import { UserMappingEntity } from './user-mapping.entity.js';

@Module({
  imports: [TypeOrmModule.forFeature([AgentEntity, UserMappingEntity])],
  providers: [AgentsService],
  exports: [AgentsService],
})
export class AgentsModule {}
