/**
 * A realistic agent tool set (the shape coding and research agents send with every turn: file access,
 * search, shell, web, a task list with an enum and nested objects), for measuring what grammars cost:
 * composed cold, from the cache, and compiled in a model worker (docs/performance.md), and for the
 * noisy-neighbour benchmark's tool traffic.
 */
export const AGENT_TOOLS = [
  tool('read_file', 'Read a text file, optionally a range of lines.', {
    type: 'object',
    properties: {
      path: { type: 'string', description: 'Absolute path' },
      offset: { type: 'integer', description: 'First line (1-based)' },
      limit: { type: 'integer', description: 'Number of lines' },
    },
    required: ['path'],
  }),
  tool('write_file', 'Create or overwrite a file.', {
    type: 'object',
    properties: { path: { type: 'string' }, content: { type: 'string' } },
    required: ['path', 'content'],
  }),
  tool('edit_file', 'Replace exact text in a file.', {
    type: 'object',
    properties: {
      path: { type: 'string' },
      old_string: { type: 'string' },
      new_string: { type: 'string' },
      replace_all: { type: 'boolean' },
    },
    required: ['path', 'old_string', 'new_string'],
  }),
  tool('list_directory', 'List the entries of a directory.', {
    type: 'object',
    properties: { path: { type: 'string' }, ignore: { type: 'array', items: { type: 'string' } } },
    required: ['path'],
  }),
  tool('search_files', 'Search file contents with a regular expression.', {
    type: 'object',
    properties: {
      pattern: { type: 'string' },
      path: { type: 'string' },
      glob: { type: 'string' },
      output_mode: { type: 'string', enum: ['content', 'files_with_matches', 'count'] },
      context_lines: { type: 'integer' },
      case_insensitive: { type: 'boolean' },
    },
    required: ['pattern'],
  }),
  tool('run_command', 'Run a shell command.', {
    type: 'object',
    properties: {
      command: { type: 'string' },
      timeout_ms: { type: 'integer' },
      description: { type: 'string' },
      background: { type: 'boolean' },
    },
    required: ['command'],
  }),
  tool('web_fetch', 'Fetch a URL and answer a question about it.', {
    type: 'object',
    properties: { url: { type: 'string', format: 'uri' }, prompt: { type: 'string' } },
    required: ['url', 'prompt'],
  }),
  tool('web_search', 'Search the web.', {
    type: 'object',
    properties: {
      query: { type: 'string', minLength: 2 },
      allowed_domains: { type: 'array', items: { type: 'string' } },
      blocked_domains: { type: 'array', items: { type: 'string' } },
    },
    required: ['query'],
  }),
  tool('todo_write', 'Replace the task list.', {
    type: 'object',
    properties: {
      todos: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            content: { type: 'string', minLength: 1 },
            status: { type: 'string', enum: ['pending', 'in_progress', 'completed', 'cancelled'] },
            priority: { type: 'string', enum: ['high', 'medium', 'low'] },
          },
          required: ['id', 'content', 'status'],
        },
      },
    },
    required: ['todos'],
  }),
  tool('ask_user', 'Ask the user a question with options.', {
    type: 'object',
    properties: {
      question: { type: 'string' },
      options: {
        type: 'array',
        items: { type: 'object', properties: { label: { type: 'string' }, value: { type: 'string' } } },
        maxItems: 4,
      },
    },
    required: ['question'],
  }),
  tool('git', 'Run a git operation.', {
    type: 'object',
    properties: {
      operation: { type: 'string', enum: ['status', 'diff', 'log', 'add', 'commit', 'branch', 'checkout', 'stash'] },
      args: { type: 'array', items: { type: 'string' } },
      message: { anyOf: [{ type: 'string' }, { type: 'null' }] },
    },
    required: ['operation'],
  }),
  tool('notebook_edit', 'Edit a cell of a notebook.', {
    type: 'object',
    properties: {
      path: { type: 'string' },
      cell: { type: 'integer' },
      source: { type: 'string' },
      cell_type: { type: 'string', enum: ['code', 'markdown'] },
      mode: { type: 'string', enum: ['replace', 'insert', 'delete'] },
    },
    required: ['path', 'source'],
  }),
];

function tool(name: string, description: string, parameters: Record<string, unknown>) {
  return { type: 'function' as const, function: { name, description, parameters } };
}
