"""Lab 15 (Part IV): pre-train, then fine-tune. The shipped tiny BERT (``shipped``), the downstream question task
(``task``), fine-tuning methods and their comparison (``classify``), LoRA (``lora``) and the bridge to Hugging Face
``transformers`` (``hf``). Nothing here is imported by ``import dlcourse``: transformers, peft and safetensors load
only when lab 15 asks for them.
"""
