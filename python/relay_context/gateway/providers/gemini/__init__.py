"""Google Gemini's wire format (``generateContent`` / ``streamGenerateContent``): requests,
responses and stream chunks to and from the neutral schema, and the upstream's endpoints."""
