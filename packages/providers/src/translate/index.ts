export type { StreamTranslator } from './stream.js';
export { anthropicStopToOpenAI, openaiFinishToAnthropic } from './stream.js';
export { chatRequestToAnthropic, anthropicResponseToChat, createAnthropicStreamToChat } from './openai/to-anthropic.js';
export { messagesRequestToOpenAI, chatResponseToAnthropic, createChatStreamToAnthropic } from './anthropic/to-openai.js';
export { createOpenAIPassthrough } from './openai/passthrough.js';
export { createAnthropicPassthrough } from './anthropic/passthrough.js';
export { chatRequestToGemini, geminiResponseToChat, createGeminiStreamToChat, usageFromGemini, geminiFinishToOpenAI } from './gemini/from-openai.js';
export { responsesRequestToChat, chatResponseToResponses, createChatStreamToResponses, type ResponsesContext } from './responses/via-chat.js';
export { chatRequestToConverse, converseResponseToChat, createConverseStreamToChat, usageFromConverse, converseError } from './bedrock/from-openai.js';
