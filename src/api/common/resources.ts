import { z } from 'zod';
import { storableString } from './schemas.ts';

/**
 * Request fields shared by jobs and endpoints: what a workload asks of a
 * node. One definition, so both validate (and document) them alike.
 */
export const ResourceFields = {
  gpu_count: z
    .int('must be an integer')
    .min(1, 'must be from 1 to 64')
    .max(64, 'must be from 1 to 64')
    .describe('GPUs, 1..64'),
  vram_per_gpu_gb: z
    .number()
    .gt(0, 'must be greater than 0 and at most 1024')
    .max(1024, 'must be greater than 0 and at most 1024')
    .optional()
    .describe('Free VRAM needed on each GPU, in GB, (0, 1024]. Default SCALAR_DEFAULT_VRAM_PER_GPU_GB'),
  cpu_cores: z
    .number()
    .positive('must be positive')
    .max(1024, 'must be at most 1024')
    .optional()
    .describe('CPU cores, > 0. Default SCALAR_DEFAULT_CPU_CORES'),
  ram_gb: z
    .number()
    .positive('must be positive')
    .max(65536, 'must be at most 65536')
    .optional()
    .describe('Host RAM in GB, > 0. Default SCALAR_DEFAULT_RAM_GB'),
  image: storableString()
    .trim()
    .min(1, 'must not be empty')
    .max(512, 'must be at most 512 characters')
    .describe('Container image'),
};

/** The same fields in responses, with defaults applied. */
export const ResourceFieldsOut = {
  gpu_count: z.number(),
  vram_per_gpu_gb: z.number(),
  cpu_cores: z.number(),
  ram_gb: z.number(),
  image: z.string(),
};

/** The spec's example job: the OpenAPI example, and the body the benchmark and tests submit. */
export const SPEC_EXAMPLE_JOB = {
  tier: 'FAST',
  gpu_count: 1,
  vram_per_gpu_gb: 40.0,
  cpu_cores: 4,
  ram_gb: 16.0,
  expected_duration_sec: 3600,
  priority: 0,
  image: 'nvidia/cuda:11.8.0-base-ubuntu22.04',
  command: ['python', 'train.py'],
  env: { MODEL_PATH: '/models/bert' },
} as const;
