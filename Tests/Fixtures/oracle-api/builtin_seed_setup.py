from nnsight import LanguageModel
model = LanguageModel("openai-community/gpt2", device_map="auto", dispatch=True)

with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    output = model.generator.output.save()

print(model.tokenizer.decode(output[0]))

with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    tokens = list().save()
    for step in tracer.iter[:]:
        token = model.lm_head.output[0, -1].argmax(dim=-1)
        tokens.append(token)

for i, t in enumerate(tokens):
    print(f"Step {i}: {model.tokenizer.decode(t)}")

with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    tokens = list().save()
    for step in tracer.iter[1:3]:
        tokens.append(model.lm_head.output[0, -1].argmax(dim=-1))
    output = model.generator.output.save()

print(f"Full output: {model.tokenizer.decode(output[0])}")
print(f"Collected {len(tokens)} tokens from steps 1-2")
