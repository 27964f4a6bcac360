/** The pages' words in Chinese (default) and English, and labels for common value types. */
import type { Lang } from './negotiate.js';

const UI = {
  title: { zh: '标识解析', en: 'Identifier resolution' },
  search: { zh: '解析', en: 'Resolve' },
  searchLabel: { zh: '输入标识，如 88.100.1/ENGINE-2026-000001', en: 'Enter an identifier, e.g. 88.100.1/ENGINE-2026-000001' },
  identifier: { zh: '标识', en: 'Identifier' },
  owner: { zh: '所属企业', en: 'Owner' },
  ownerUnknown: { zh: '未知', en: 'unknown' },
  status: { zh: '状态', en: 'Status' },
  values: { zh: '标识数据', en: 'Values' },
  open: { zh: '打开', en: 'Open' },
  technical: { zh: '技术详情', en: 'Technical details' },
  index: { zh: '索引', en: 'Index' },
  type: { zh: '类型', en: 'Type' },
  timestamp: { zh: '时间戳', en: 'Timestamp' },
  data: { zh: '数据', en: 'Data' },
  json: { zh: 'JSON 格式', en: 'JSON' },
  qr: { zh: '二维码', en: 'QR code' },
  qrOf: { zh: '二维码：', en: 'QR code of ' },
  other: { zh: 'English', en: '中文' },
  noValues: { zh: '没有公开数据', en: 'No public values' },
  notFound: { zh: '标识未注册', en: 'Identifier not registered' },
  notFoundText: { zh: '本节点没有此标识的记录：', en: 'This node has no record of ' },
  badIdentifier: { zh: '标识格式错误', en: 'Malformed identifier' },
  upstreamFailed: { zh: '上级节点无法应答', en: 'The upstream node did not answer' },
  upstreamTimeout: { zh: '上级节点应答超时', en: 'The upstream node timed out' },
  error: { zh: '无法解析', en: 'Cannot resolve' },
  tryAgain: { zh: '请稍后重试，或搜索其他标识。', en: 'Try again later, or search for another identifier.' },
  prefix: { zh: '前缀', en: 'Prefix' },
  prefixIdentifiers: { zh: '此前缀下的标识', en: 'Identifiers under this prefix' },
  labels: { zh: '二维码标签', en: 'QR labels' },
  print: { zh: '打印', en: 'Print' },
  node: { zh: '本节点', en: 'This node' },
  foreign: { zh: '由其他节点解析', en: 'Resolved by another node' },
  login: { zh: '审计登录', en: 'Auditor login' },
  logout: { zh: '退出', en: 'Log out' },
  token: { zh: '令牌（审计员或管理员）', en: 'Token (auditor or admin)' },
  loginHelp: {
    zh: '粘贴审计员或管理员令牌。登录后页面显示非公开数据、历史版本和追溯关系。',
    en: 'Paste an auditor or admin token. Logged in, pages show non-public values, history and lineage.',
  },
  loginFailed: { zh: '令牌无效，或不是审计员/管理员令牌。', en: 'The token is unknown, revoked, or not an auditor or admin token.' },
  loggedInAs: { zh: '已登录：', en: 'Logged in: ' },
  nonPublic: { zh: '非公开', en: 'non-public' },
  history: { zh: '历史版本', en: 'History' },
  version: { zh: '版本', en: 'Version' },
  when: { zh: '时间', en: 'When' },
  who: { zh: '操作者', en: 'Who' },
  action: { zh: '操作', en: 'Action' },
  deleted: { zh: '已删除', en: 'deleted' },
  deletedTitle: { zh: '标识已删除', en: 'Identifier deleted' },
  deletedText: { zh: '此标识曾在本节点注册，现已删除。', en: 'This identifier was registered on this node and has been deleted.' },
  deletedAt: { zh: '删除时间', en: 'Deleted on' },
  deletedBy: { zh: '删除者', en: 'Deleted by' },
  badPath: { zh: '链接格式错误', en: 'Malformed link' },
  badPathText: {
    zh: '此链接含有无效的百分号编码（% 后应为两位十六进制数字）。请检查链接，或在下方输入标识。',
    en: 'This link has an invalid percent-escape (% must be followed by two hex digits). Check the link, or enter the identifier below.',
  },
  lineage: { zh: '追溯关系', en: 'Lineage' },
  lineageNone: { zh: '没有追溯关系', en: 'No lineage recorded' },
  truncated: { zh: '关系图已截断（深度或节点数上限）', en: 'The graph is cut short (depth or node limit)' },
  active: { zh: '已启用', en: 'active' },
  pending: { zh: '待审核', en: 'pending' },
  suspended: { zh: '已暂停', en: 'suspended' },
} as const satisfies Record<string, Record<Lang, string>>;

export type Word = keyof typeof UI;

export function t(lang: Lang, word: Word): string {
  return UI[word][lang];
}

/** Common value types (Handle, IDIS and the seeds): a person reads these, not the raw type. */
const TYPES: Record<string, Record<Lang, string>> = {
  url: { zh: '网址', en: 'Web address' },
  email: { zh: '电子邮件', en: 'Email' },
  name: { zh: '名称', en: 'Name' },
  batch: { zh: '批次', en: 'Batch' },
  model: { zh: '型号', en: 'Model' },
  productiondate: { zh: '生产日期', en: 'Production date' },
  manufacturer: { zh: '制造商', en: 'Manufacturer' },
  parts: { zh: '零部件', en: 'Parts' },
  material: { zh: '材料', en: 'Material' },
  supplier: { zh: '供应商', en: 'Supplier' },
  weight: { zh: '重量', en: 'Weight' },
  serial: { zh: '序列号', en: 'Serial number' },
  vin: { zh: '车辆识别代号', en: 'VIN' },
  description: { zh: '描述', en: 'Description' },
  desc: { zh: '描述', en: 'Description' },
  hs_site: { zh: '服务站点', en: 'Service site' },
  hs_admin: { zh: '管理员', en: 'Administrator' },
  hs_alias: { zh: '别名', en: 'Alias' },
  template: { zh: '元数据模板', en: 'Metadata template' },
};

export function typeLabel(lang: Lang, type: string): string | undefined {
  return TYPES[type.toLowerCase()]?.[lang];
}
