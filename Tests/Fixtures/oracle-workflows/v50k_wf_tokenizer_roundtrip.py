text = "Interpretability: reading activations, step by step."
ids = model.tokenizer.encode(text)
print(ids, model.tokenizer.decode(ids) == text)
batch = model.tokenizer(["a b c", "hello"], padding=True, return_tensors="pt")
print(batch["input_ids"].tolist(), batch["attention_mask"].tolist())
with model.trace(batch) as tracer:
    logits = model.lm_head.output.save()
print(logits.shape, [model.tokenizer.decode(t) for t in logits[:, -1].argmax(-1).tolist()])
